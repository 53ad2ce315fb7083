/*
 * test_message_signature.cpp
 *	  Unit tests of failure-message normalisation and signatures
 *	  (extension/src/core/message_signature.cpp).
 */
#include <boost/test/unit_test.hpp>

#include "flakeguard/core/message_signature.hpp"
#include "flakeguard/core/test_id.hpp"

#include <chrono>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

using flakeguard::message_signature;
using flakeguard::normalize_message;

namespace {

/* each message and what it normalizes to */
void
check_all(const std::vector<std::pair<std::string, std::string>> &cases)
{
	for (const auto &[message, expected] : cases) {
		BOOST_TEST_CONTEXT("message: " << message)
		{
			BOOST_TEST(normalize_message(message) == expected);
		}
	}
}

void
check_same_signature(const std::vector<std::string> &messages)
{
	for (const std::string &m : messages) {
		BOOST_TEST_CONTEXT(m << " vs " << messages.front())
		{
			BOOST_TEST(message_signature(m) == message_signature(messages.front()));
		}
	}
	BOOST_TEST(message_signature(messages.front()) != 0u);
}

} // namespace

BOOST_AUTO_TEST_SUITE(message_signature_suite)

BOOST_AUTO_TEST_CASE(values_are_frozen)
{
	/* stored signatures: these values may never change (the SQL regression test checks the same ones) */
	BOOST_TEST(message_signature("expected 3 but was 4") == 0x886160642276288EULL);
	BOOST_TEST(message_signature("connection refused") == 0x1DB8534FC0CBAD95ULL);
	BOOST_TEST(message_signature("java.lang.NullPointerException") == 0x80F05D1630FED4C7ULL);
	BOOST_TEST(message_signature("AssertionError: expected 200 but got 503 at 2024-05-06T07:08:09Z "
								 "(/home/ci/build/42/tests/test_api.py:118)") == 0xB736ADC0756CDEE0ULL);
	BOOST_TEST(normalize_message("AssertionError: expected 200 but got 503 at 2024-05-06T07:08:09Z "
								 "(/home/ci/build/42/tests/test_api.py:118)") ==
			   "AssertionError: expected <n> but got <n> at <ts> (<path>:<n>)");
}

BOOST_AUTO_TEST_CASE(signature_is_test_id_of_the_normalized_text)
{
	for (const char *m : {"expected 3 but was 4", "  x\t", "connection refused", "\xff"})
		BOOST_TEST(message_signature(m) == flakeguard::test_id(normalize_message(m)));
}

BOOST_AUTO_TEST_CASE(empty_and_whitespace_have_no_signature)
{
	BOOST_TEST(message_signature("") == 0u);
	BOOST_TEST(message_signature(" ") == 0u);
	BOOST_TEST(message_signature(" \t\r\n\v\f ") == 0u);
	BOOST_TEST(message_signature(std::string("\0\0\x1b\x7f", 4)) == 0u); /* control characters are whitespace */
	BOOST_TEST(normalize_message(" \t\n ") == "");
	BOOST_TEST(message_signature("0") != 0u);
	BOOST_TEST(message_signature(".") != 0u);
}

BOOST_AUTO_TEST_CASE(whitespace_collapses)
{
	check_all({
		{"  a \t\n b  ", "a b"},
		{"line one\r\nline two\n", "line one line two"},
		{"\ta", "a"},
		{"a\x1b[31mred\x1b[0m", "a [<n>mred [<n>m"},
		{std::string("a\0b", 3), "a b"},
	});
}

BOOST_AUTO_TEST_CASE(timestamps_and_dates)
{
	check_all({
		{"at 2024-01-02T03:04:05", "at <ts>"},
		{"at 2024-01-02T03:04:05.123Z", "at <ts>"},
		{"at 2024-01-02T03:04:05+01:00.", "at <ts>."},
		{"at 2024-01-02T03:04:05-0800", "at <ts>"},
		{"at 2024-01-02T03:04:05+01", "at <ts>"},
		{"at 2024-01-02 03:04:05,999 INFO", "at <ts> INFO"},
		{"at 2024-01-02t03:04:05z", "at <ts>"},
		{"on 2024-01-02", "on <date>"},
		{"on 2024-01-02, then", "on <date>, then"},
		{"on 2024-01-02Tomorrow", "on <date>Tomorrow"},
		{"at 12:34:56", "at <ts>"},
		{"at 3:04:05.123456", "at <ts>"},
		{"[12:34:56] done", "[<ts>] done"},
		{"12:34 left", "<n>:<n> left"},
		{"12:34:567", "<n>:<n>:<n>"},
		{"2024-01-02  03:04:05", "<date> <ts>"},
	});
	check_same_signature({"deadline passed at 2024-01-02T03:04:05Z", "deadline passed at 2025-12-31T23:59:59.999Z",
						  "deadline passed at 1999-06-07 08:09:10+02:00"});
}

BOOST_AUTO_TEST_CASE(uuids_and_hex)
{
	check_all({
		{"id 123e4567-e89b-12d3-a456-426614174000 gone", "id <uuid> gone"},
		{"id 123E4567-E89B-12D3-A456-426614174000", "id <uuid>"},
		{"id abcdefab-abcd-abcd-abcd-abcdefabcdef", "id <uuid>"},
		{"123e4567-e89b-12d3-a456-426614174000x", "<hex>-e89b-<n>d3-a456-<n>x"}, /* glued: not a UUID */
		{"ptr 0x7ffd1234 and 0XDEAD", "ptr <hex> and <hex>"},
		{"commit 3f2a9c1d8e7b", "commit <hex>"},
		{"sha256:9F86D081884C7D659A2FEAEA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A0", "sha256:<hex>"},
		{"at 7ffd1234abcd", "at <hex>"},
		{"short 3f2a9c1", "short <n>f2a9c1"},
		{"deadbeef cafebabe", "deadbeef cafebabe"}, /* no digit: words */
		{"Added123 bed12345e", "Added123 <hex>"},   /* mixed case: a word */
		{"0x 0x1g", "<n>x <n>x1g"},
	});
	check_same_signature({"object 0x7ffd1234 already freed", "object 0x55d0c0de already freed"});
	check_same_signature({"checkout of 3f2a9c1d8e7b4a6f failed", "checkout of 0123abcd4567 failed"});
	check_same_signature({"session 123e4567-e89b-12d3-a456-426614174000 expired",
						  "session 00000000-0000-0000-0000-000000000000 expired"});
}

BOOST_AUTO_TEST_CASE(paths_with_line_numbers)
{
	check_all({
		{"File /home/u/src/foo.py:45 failed", "File <path>:<n> failed"},
		{"at Foo.bar(src\\Foo.java:12:7)", "at Foo.bar(<path>:<n>)"},
		{"foo.go:45: expected 3 but was 4", "<path>:<n>: expected <n> but was <n>"},
		{"C:\\src\\x.cs:10", "<path>:<n>"},
		{"at Object.<anonymous> (/home/ci/app/test.js:10:15)", "at Object.<anonymous> (<path>:<n>)"},
		{"see \"./a/b.rb:3\"", "see \"<path>:<n>\""},
		{"main_test.GO:9", "<path>:<n>"},
		{"a/:1", "<path>:<n>"},
		{"/:1", "/:<n>"},                  /* no name */
		{"foo.py:45abc", "foo.py:<n>abc"}, /* not a line number */
		{"x.foo:45", "x.foo:<n>"},         /* not a source extension */
		/* paths without a line number keep their text; their numbers are masked */
		{"File \"/tmp/pytest-of-u/pytest-12/test_x0/a.py\", line 45",
		 "File \"/tmp/pytest-of-u/pytest-<n>/test_x0/a.py\", line <n>"},
	});
	check_same_signature({"assertion failed at /home/alice/src/app/foo.py:45", "assertion failed at /builds/x/foo.py:7",
						  "assertion failed at foo.py:1200:3"});
}

BOOST_AUTO_TEST_CASE(hosts_ports_and_addresses)
{
	check_all({
		{"connect to localhost:8080 failed", "connect to localhost:<n> failed"},
		{"connect to 127.0.0.1:34567 failed", "connect to <ip>:<n> failed"},
		{"host db:5432", "host db:<n>"},
		{"db.example.com:5432", "db.example.com:<n>"},
		{"GET http://localhost:8080/api/v1/items/17", "GET http://localhost:<n>/api/v1/items/<n>"},
		{"from 10.0.0.255 and 192.168.1.1.", "from <ip> and <ip>."},
		{"[::1]:5432", "[::<n>]:<n>"},
		{"1.2.3.4.5", "<n>.<n>.<n>"},
	});
	check_same_signature({"could not connect to server at 127.0.0.1:34567: Connection refused",
						  "could not connect to server at 10.1.2.3:5432: Connection refused"});
	check_same_signature({"listen localhost:34121 in use", "listen localhost:40001 in use"});
}

BOOST_AUTO_TEST_CASE(numbers)
{
	check_all({
		{"expected 3 but was 4", "expected <n> but was <n>"},
		{"x = -5, a-5, 10-20, (-5), 5 - -3", "x = <n>, a-<n>, <n>-<n>, (<n>), <n> - <n>"},
		{"pi is 3.14, eps 1.5e-3, big 6E+23", "pi is <n>, eps <n>, big <n>"},
		{"timeout after 5000ms", "timeout after <n>ms"},
		{"took 1.5s", "took <n>s"},
		{"1,000,000 rows", "<n>,<n>,<n> rows"},
		{"f(-0x1f) x[-1] v1.2.3", "f(-<hex>) x[<n>] v1.<n>"},
		{"--5", "-<n>"},
		{"price 5€ café2", "price <n>€ café<n>"},
		{"Expected:<5> but was:<6>", "Expected:<<n>> but was:<<n>>"},
	});
	check_same_signature({"timeout after 5000ms", "timeout after 300ms", "  timeout  after 12ms\n"});
	check_same_signature({"expected 3 but was 4", "expected 10 but was -2", "expected 0.5 but was 1e9"});
}

BOOST_AUTO_TEST_CASE(identifiers_keep_their_digits)
{
	check_all({
		{"test2 utf8 x86_64 sha256 _5 test_123 ipv6", "test2 utf8 x86_64 sha256 _5 test_123 ipv6"},
		{"Test2.testFoo3(Test2.kt)", "Test2.testFoo3(Test2.kt)"},
	});
	BOOST_TEST(message_signature("test2 failed") != message_signature("test3 failed"));
}

BOOST_AUTO_TEST_CASE(different_failure_modes_differ)
{
	std::vector<std::string> modes = {
		"expected 3 but was 4",
		"connection refused",
		"java.lang.NullPointerException",
		"timeout after 5000ms",
		"timeout after 5s",
		"expected <n> but got <n>",
		"AssertionError",
		"AssertionError: lists differ",
		"connection reset by peer",
		"NullPointerException",
	};
	std::set<std::uint64_t> seen;
	for (const std::string &m : modes)
		seen.insert(message_signature(m));
	BOOST_TEST(seen.size() == modes.size());
	BOOST_TEST(seen.count(0) == 0u);
}

BOOST_AUTO_TEST_CASE(invalid_utf8_and_nul_are_safe)
{
	/* valid sequences are copied whole, invalid bytes one by one, NUL is whitespace */
	BOOST_TEST(normalize_message("\xff 123 \xc3") == "\xff <n> \xc3");
	BOOST_TEST(normalize_message("\xc3\xa9t\xc3\xa9 12") == "\xc3\xa9t\xc3\xa9 <n>");
	BOOST_TEST(normalize_message("\xe2\x82 5") == "\xe2\x82 <n>");
	BOOST_TEST(normalize_message("\x80\x80\x80\x80") == "\x80\x80\x80\x80");
	BOOST_TEST(normalize_message(std::string("x\0"
											 "42\0",
											 5)) == "x <n>");
	BOOST_TEST(message_signature(std::string("\xfe\xff\0", 3)) != 0u);

	/* every byte value, in every position: no crash, and the output is bounded */
	std::string all;
	for (int i = 0; i < 256; i++)
		all.push_back(static_cast<char>(i));
	for (std::size_t i = 0; i < all.size(); i++) {
		std::string m = all.substr(i) + all.substr(0, i);
		std::string n = normalize_message(m);
		BOOST_TEST(n.size() <= flakeguard::normalized_size_bound(m.size()));
		BOOST_TEST(normalize_message(n) == n);
	}
}

BOOST_AUTO_TEST_CASE(only_a_prefix_is_read)
{
	using flakeguard::kMessageBytesRead;
	using flakeguard::kMessageInputLimit;

	/* the input is cut at 4096 bytes, back to the start of a split UTF-8 sequence */
	std::string a4095(kMessageInputLimit - 1, 'a');
	BOOST_TEST(normalize_message(a4095 + "\xc3\xa9" + "tail") == a4095);
	BOOST_TEST(normalize_message(a4095 + "b\xc3\xa9") == a4095 + "b");
	std::string a4093(kMessageInputLimit - 3, 'a');
	BOOST_TEST(normalize_message(a4093 + "\xf0\x9f\x98\x80" + "tail") == a4093);
	BOOST_TEST(normalize_message(a4093 + "b\xf0\x9f\x98\x80") == a4093 + "b");
	BOOST_TEST(normalize_message(std::string(kMessageInputLimit - 2, 'a') + "\xc3\xa9" + "x") ==
			   std::string(kMessageInputLimit - 2, 'a') + "\xc3\xa9");
	/* invalid: more than 3 continuation bytes are cut anyway */
	BOOST_TEST(normalize_message(a4093 + std::string(10, '\x80')).size() == kMessageInputLimit - 3);

	/* a message's first kMessageBytesRead bytes normalize like all of it */
	std::string m = "failure at 12:34:56 " + std::string(5000, 'x');
	for (std::size_t len : {kMessageInputLimit - 1, kMessageInputLimit, kMessageInputLimit + 1, m.size()}) {
		std::string cut = m.substr(0, len) + "\xc3\xa9 more text";
		BOOST_TEST(normalize_message(cut.substr(0, kMessageBytesRead)) == normalize_message(cut));
	}
}

BOOST_AUTO_TEST_CASE(output_is_capped_between_pieces)
{
	using flakeguard::kNormalizedMessageLimit;

	/* 2048 lone digits would become 8191 bytes: the output stops before the piece that does not fit */
	std::string digits;
	for (int i = 0; i < 2048; i++)
		digits += "7 ";
	std::string n = normalize_message(digits);
	BOOST_TEST(n.size() <= kNormalizedMessageLimit);
	BOOST_TEST(n.size() > kNormalizedMessageLimit - 4);
	BOOST_TEST(n.substr(n.size() - 3) == "<n>");
	BOOST_TEST(normalize_message(n) == n);

	/* a word is kept whole or not at all: 300 numbers make 1199 bytes, a 3000-byte word does not fit after them */
	std::string numbers;
	for (int i = 0; i < 300; i++)
		numbers += "1 ";
	BOOST_TEST(normalize_message(numbers).size() == 1199u);
	BOOST_TEST(normalize_message(numbers + std::string(3000, 'w')) == normalize_message(numbers));
	BOOST_TEST(normalize_message(numbers + std::string(2800, 'w')).size() == 1199u + 1 + 2800);
}

BOOST_AUTO_TEST_CASE(size_bound_holds)
{
	using flakeguard::normalized_size_bound;
	static_assert(normalized_size_bound(0) == 0);
	static_assert(normalized_size_bound(1) == 3);
	static_assert(normalized_size_bound(10 * 1024 * 1024) == flakeguard::kNormalizedMessageLimit);

	/* the shortest inputs of every mask, repeated */
	for (const char *unit : {"1", "1 ", "-1 ", "0x1 ", "a/:1 ", "/a:1 ", "a.go:1 ", "1.2.3.4 ", "1:02:03 ", ":1", "(1",
							 "C:/:1 ", "\xff", "\t"}) {
		for (std::size_t reps : {1u, 2u, 7u, 5000u}) {
			std::string m;
			for (std::size_t i = 0; i < reps; i++)
				m += unit;
			BOOST_TEST_CONTEXT(reps << " x " << unit)
			{
				BOOST_TEST(normalize_message(m).size() <= normalized_size_bound(m.size()));
			}
		}
	}
}

BOOST_AUTO_TEST_CASE(normalizing_is_idempotent)
{
	/* fragments of every rule, glued together at random (fixed seed) */
	const std::vector<std::string> parts = {
		"12",         "1",        "-",          "0x1f",
		"0x",         "abc",      "2024-01-02", "T",
		"12:34:56",   ".",        ":",          "/",
		"\\",         "a.py",     "\xc3\xa9",   "\xff",
		"\xc3",       " ",        "\t",         std::string(1, '\0'),
		"deadbeef12", "ABCDEF12", "(",          ")",
		"<",          ">",        "n",          "e",
		"+",          "_",        ",",          "-3",
		"localhost",  "//",       "Z",          "123e4567-e89b-12d3-a456-426614174000",
		"x",          "ms",       "1.5",        "e5",
		"=",          "a1b2c3d4", "<n>",        "<path>:<n>",
		"1.2.3.4",    "]",        "\"",         "@",
	};
	std::mt19937 rng(20240102);
	for (int round = 0; round < 50000; round++) {
		std::string m;
		std::size_t count = round % 500 == 0 ? 2000 + rng() % 2000 : rng() % 12;
		for (std::size_t i = 0; i < count; i++)
			m += parts[rng() % parts.size()];
		std::string once = normalize_message(m);
		std::string twice = normalize_message(once);
		if (once != twice || once.size() > flakeguard::normalized_size_bound(m.size()))
			BOOST_TEST_FAIL("not idempotent or too long for: " << m);
	}

	for (const char *m : {"AssertionError: expected 200 but got 503 at 2024-05-06T07:08:09Z (/a/b.py:1)",
						  "connect localhost:8080 127.0.0.1:34567", "  x  ", "ptr 0x1f, id 3f2a9c1d8e7b"})
		BOOST_TEST(normalize_message(normalize_message(m)) == normalize_message(m));
}

BOOST_AUTO_TEST_CASE(huge_messages_are_fast)
{
	/* 10 MB of every kind of input: only the first 4096 bytes are read */
	const std::vector<std::string> fills = {std::string(1, '1'), "1 ", "a", "a/", "-", "0x", " ", "\xff", "1.",
											std::string(1, '\0')};
	for (const std::string &fill : fills) {
		std::string m;
		m.reserve(10 * 1024 * 1024);
		while (m.size() < 10 * 1024 * 1024)
			m += fill;
		auto start = std::chrono::steady_clock::now();
		std::string n = normalize_message(m);
		std::uint64_t sig = message_signature(m);
		auto elapsed = std::chrono::steady_clock::now() - start;
		BOOST_TEST(n.size() <= flakeguard::kNormalizedMessageLimit);
		BOOST_TEST(sig == (n.empty() ? 0 : flakeguard::test_id(n)));
		BOOST_TEST(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() < 500);
	}
}

BOOST_AUTO_TEST_SUITE_END()
