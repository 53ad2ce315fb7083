/*
 * test_utf8.cpp
 *	  The core's UTF-8 helper (flakeguard/core/utf8.hpp), which the JUnit
 *	  reader and the sidecar share.
 */
#include <boost/test/unit_test.hpp>

#include "flakeguard/core/utf8.hpp"

#include <string>

using namespace flakeguard;

BOOST_AUTO_TEST_SUITE(utf8)

BOOST_AUTO_TEST_CASE(sequences)
{
	struct Row {
		std::string bytes;
		std::size_t len;
	};
	const Row rows[] = {
		{"a", 1},
		{std::string("\0", 1), 1},
		{"\x7f", 1},
		{"\xc3\xa9", 2},
		{"\xe2\x82\xac", 3},
		{"\xf0\x9f\x98\x80", 4},
		{"\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF */
		{"\xef\xbf\xbd", 3},     /* U+FFFD */
		{"\x80", 0},             /* a continuation byte alone */
		{"\xc0\x80", 0},         /* overlong NUL */
		{"\xc1\xbf", 0},         /* overlong */
		{"\xe0\x9f\xbf", 0},     /* overlong */
		{"\xf0\x8f\xbf\xbf", 0}, /* overlong */
		{"\xed\xa0\x80", 0},     /* a surrogate */
		{"\xed\xbf\xbf", 0},     /* a surrogate */
		{"\xf4\x90\x80\x80", 0}, /* beyond U+10FFFF */
		{"\xf5\x80\x80\x80", 0},
		{"\xff", 0},
		{"\xc3", 0},         /* cut short */
		{"\xe2\x82", 0},     /* cut short */
		{"\xf0\x9f\x98", 0}, /* cut short */
		{"\xc3\x28", 0},     /* not a continuation */
		{"\xe2\x28\xa1", 0},
		{"\xe2\x82\x28", 0},
	};
	for (const Row &r : rows)
		BOOST_TEST(utf8_sequence_length(r.bytes.data(), r.bytes.size()) == r.len, "sequence of " << r.bytes.size());
	BOOST_TEST(utf8_sequence_length("", 0) == 0u);
	/* avail bounds the read: a valid sequence counts only when it fits */
	BOOST_TEST(utf8_sequence_length("\xe2\x82\xac", 2) == 0u);
}

BOOST_AUTO_TEST_CASE(valid_and_prefix)
{
	BOOST_TEST(utf8_valid(""));
	BOOST_TEST(utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80"));
	BOOST_TEST(utf8_valid(std::string("a\0b", 3)));
	BOOST_TEST(!utf8_valid("caf\xc3"));
	BOOST_TEST(!utf8_valid("\xed\xa0\x80"));
	/* hostile: a megabyte of continuation bytes, and of valid text with one bad byte at the end */
	BOOST_TEST(!utf8_valid(std::string(1 << 20, '\x80')));
	std::string big(1 << 20, 'a');
	BOOST_TEST(utf8_valid(big));
	big += '\xff';
	BOOST_TEST(!utf8_valid(big));

	BOOST_TEST(utf8_prefix_length("", 0) == 0u);
	BOOST_TEST(utf8_prefix_length("abc", 10) == 3u);
	BOOST_TEST(utf8_prefix_length("abc", 0) == 0u);
	BOOST_TEST(utf8_prefix_length("a\xc3\xa9", 2) == 1u); /* not inside é */
	BOOST_TEST(utf8_prefix_length("a\xc3\xa9", 3) == 3u);
	BOOST_TEST(utf8_prefix_length("\xf0\x9f\x98\x80x", 3) == 0u);
	BOOST_TEST(utf8_prefix_length("\xf0\x9f\x98\x80x", 4) == 4u);
	/* continuation bytes without a lead: clipped to nothing rather than read past the start */
	BOOST_TEST(utf8_prefix_length("\x80\x80\x80\x80", 2) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
