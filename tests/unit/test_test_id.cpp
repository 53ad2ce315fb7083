/*
 * test_test_id.cpp
 *	  Unit tests of the stable test identity (extension/src/core/test_id.cpp).
 */
#include <boost/test/unit_test.hpp>

#include "flakeguard/core/test_id.hpp"

#include <cstdint>
#include <set>
#include <string>

using flakeguard::test_id;

BOOST_AUTO_TEST_SUITE(test_id_suite)

BOOST_AUTO_TEST_CASE(values_are_frozen)
{
	/* stored keys: these values may never change (the SQL regression test checks the same ones) */
	BOOST_TEST(test_id("") == 0x7D8BDF20B7A7DBEAULL);
	BOOST_TEST(test_id("com.acme.CartTest.adds") == 0x320825B9753CD01AULL);
	BOOST_TEST(test_id("a") != test_id("b"));
}

BOOST_AUTO_TEST_CASE(every_byte_and_the_length_count)
{
	std::set<std::uint64_t> seen;
	std::string base(17, 'x');
	for (std::size_t i = 0; i < base.size(); i++) {
		std::string s = base;
		s[i] = 'y';
		seen.insert(test_id(s));
	}
	seen.insert(test_id(base));
	seen.insert(test_id(base + std::string(1, '\0')));
	seen.insert(test_id(base.substr(0, 16)));
	BOOST_TEST(seen.size() == base.size() + 3);
}

BOOST_AUTO_TEST_CASE(no_collisions_among_many_similar_names)
{
	std::set<std::uint64_t> seen;
	for (int i = 0; i < 200000; i++)
		seen.insert(test_id("com.acme.Suite" + std::to_string(i % 97) + ".test_" + std::to_string(i)));
	BOOST_TEST(seen.size() == 200000u);
	BOOST_TEST(seen.count(0) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
