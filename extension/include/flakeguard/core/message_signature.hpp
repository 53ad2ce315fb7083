/*
 * message_signature.hpp
 *	  Failure-message normalisation and signatures.
 *
 * Two failures of one failure mode rarely carry the same message: the
 * timestamps, ports, addresses, temporary paths, line numbers and measured
 * values differ from run to run.  normalize_message() masks those parts, so
 * that the messages of one failure mode become the same text, and
 * message_signature() is a stable 64-bit hash of that text.
 *
 * Signatures are stored in a table: the masking rules below and the hash are
 * part of the stored format.  Changing any rule (or the limits) changes the
 * signatures of already stored failures; the unit and regression tests freeze
 * a few values.
 *
 * The rules, applied by one left-to-right scan over the bytes (no regular
 * expressions: linear time and constant stack on any input).  At each
 * position the first rule that matches wins, in this order: longer, more
 * specific patterns first.  An "identifier character" is an ASCII letter,
 * digit or '_'; a "run" is a maximal sequence of identifier characters.
 *
 *  1. Only the first kMessageInputLimit (4096) bytes are read, cut back by at
 *     most 3 bytes so as not to split a UTF-8 sequence.  The output is at
 *     most kNormalizedMessageLimit (4096) bytes, cut only between the pieces
 *     the rules write (never inside a mask, a kept run or a character).
 *  2. Whitespace and every other ASCII control character (NUL, ESC, DEL, ...)
 *     collapse to one space; leading and trailing ones are dropped.
 *  3. At a token start (the start of the text, or after a space or one of
 *     ( [ { < " ' ` = , ; : |), a path with a line number becomes
 *     "<path>:<n>": path characters (identifier characters, . - / \ ~ + @ and
 *     non-ASCII bytes, after an optional drive prefix like C:\), then
 *     :digits, optionally :digits again (a column), not followed by an
 *     identifier character.  The path must contain a / or \ and some
 *     character other than / \ . (and not start with //, a URL's host), or
 *     end in a known source file extension (.py, .java, .go, .js, .rs, ...,
 *     any case).  "/home/u/src/foo.py:45", "src\Foo.java:12:7" and
 *     "foo.go:45" all become "<path>:<n>"; "localhost:8080" and
 *     "db.example.com:5432" are not paths (rules 7-9 apply).  A path
 *     without a line number keeps its text; its numbers follow rule 7.
 *  4. A run that starts with a digit:
 *     a. yyyy-mm-dd, then T or a space, then a clock time (4b), then
 *        optionally Z or an offset +hh:mm, +hhmm or +hh: "<ts>".  Without the
 *        time: "<date>".
 *     b. a clock time h:mm:ss or hh:mm:ss, optionally .fff or ,fff: "<ts>".
 *     c. an IPv4 address d.d.d.d (1-3 digits each, not followed by .digit or
 *        an identifier character): "<ip>".  Its port is a number (rule 7):
 *        "127.0.0.1:34567" -> "<ip>:<n>".
 *  5. A UUID, 8-4-4-4-12 hex digits of either case, not followed by an
 *     identifier character: "<uuid>".
 *  6. A run that is 0x or 0X and hex digits: "<hex>".  A run of at least 8
 *     hex digits with at least one decimal digit and at least one letter, the
 *     letters all of one case (commit SHAs, hashes, addresses): "<hex>".
 *  7. A run that starts with a digit: the number -- digits, optionally
 *     .digits, optionally an exponent e[+-]digits -- becomes "<n>".  A '-'
 *     right before it belongs to it unless the byte before the '-' is an
 *     identifier character or ) ] . ("x = -5" -> "x = <n>", "a-5" -> "a-<n>",
 *     "10-20" -> "<n>-<n>").  Letters glued after the number (units) are
 *     kept: "5000ms" -> "<n>ms".
 *  8. Any other run (one that starts with a letter or '_') is kept as it is,
 *     digits included: "test2", "utf8", "x86_64", "sha256" name things.
 *  9. Every other byte is copied: a valid UTF-8 sequence as a whole, an
 *     invalid byte alone (invalid input gives invalid output).  Digits after
 *     a non-ASCII character are not part of a run: "café2" -> "café<n>".
 *
 * The output contains no decimal digit outside a kept run (rule 8), so
 * normalize_message() is idempotent: normalizing its output changes nothing.
 */
#pragma once

#include "flakeguard/core/core_only.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace flakeguard {

/* Rule 1: the bytes of a message that are read, and the most that is written. */
constexpr std::size_t kMessageInputLimit = 4096;
constexpr std::size_t kNormalizedMessageLimit = 4096;

/*
 * The rules look at one byte past the input limit (to see whether the cut
 * splits a UTF-8 sequence): a prefix of at least this many bytes of a message
 * normalizes like the whole message.
 */
constexpr std::size_t kMessageBytesRead = kMessageInputLimit + 1;

/*
 * The longest normalize_message() output for an n-byte message.  No rule
 * writes more than 3 bytes per byte it reads (a lone digit becomes "<n>"),
 * and the output is capped.
 */
constexpr std::size_t
normalized_size_bound(std::size_t n) noexcept
{
	std::size_t read = n < kMessageInputLimit ? n : kMessageInputLimit;
	return 3 * read < kNormalizedMessageLimit ? 3 * read : kNormalizedMessageLimit;
}

/* The message with the rules above applied; throws only std::bad_alloc. */
std::string normalize_message(std::string_view message);

/*
 * test_id() of normalize_message(message), or 0 ("no signature") when the
 * normalized message is empty: the message is empty or only whitespace.
 * As a PostgreSQL bigint it is the same 64 bits, read as signed.
 */
std::uint64_t message_signature(std::string_view message);

} // namespace flakeguard
