/*
 * test_ingest_stream.cpp
 *	  Unit tests of the sidecar's stream entries and staging
 *	  (sidecar/src/ingest_stream.cpp), without PostgreSQL or Redis.
 */
#include <boost/test/unit_test.hpp>

#include "ingest_stream.hpp"
#include "json.hpp"
#include "pg.hpp"
#include "redis.hpp"
#include "stop.hpp"

#include "flakeguard/core/error.hpp"
#include "flakeguard/core/test_id.hpp"

#include <sstream>
#include <string>
#include <vector>

using namespace flakeguard::sidecar;

namespace {

Upload
sample_upload()
{
	Upload u;
	u.repo = "acme/checkout";
	u.run_id = "1234";
	u.attempt = 2;
	u.job = "linux";
	u.commit_sha = "abc123";
	u.created_at = "2026-11-27T10:00:00.123456Z";
	u.files = {{"a.xml", "<testsuite name=\"s\"><testcase classname=\"C\" name=\"t\" time=\"0.5\"/></testsuite>"}};
	return u;
}

/* the SQLSTATE decode_upload rejects fields with, or "" when it accepts them */
std::string
rejection(const Fields &fields, std::size_t max = 1 << 20)
{
	try {
		decode_upload(fields, max);
		return "";
	} catch (const EntryError &e) {
		BOOST_TEST(!e.rejection.error.empty());
		return e.rejection.sqlstate;
	}
}

Fields
without(Fields fields, const std::string &name)
{
	Fields out;
	for (auto &f : fields)
		if (f.first != name)
			out.push_back(f);
	return out;
}

Fields
with(Fields fields, const std::string &name, const std::string &value)
{
	for (auto &f : fields)
		if (f.first == name) {
			f.second = value;
			return fields;
		}
	fields.emplace_back(name, value);
	return fields;
}

/* the rows of a COPY text buffer, split into fields */
std::vector<std::vector<std::string>>
rows(const std::string &copy)
{
	std::vector<std::vector<std::string>> out;
	std::istringstream lines(copy);
	std::string line;
	while (std::getline(lines, line)) {
		std::vector<std::string> fields;
		std::string field;
		std::istringstream cells(line);
		while (std::getline(cells, field, '\t'))
			fields.push_back(field);
		if (!line.empty() && line.back() == '\t')
			fields.emplace_back();
		out.push_back(fields);
	}
	return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(ingest_stream)

BOOST_AUTO_TEST_CASE(entry_round_trip)
{
	Upload u = sample_upload();
	u.files.emplace_back("b.xml", std::string("bytes\0with nul", 14));
	Upload back = decode_upload(encode_upload(u), 1 << 20);
	BOOST_TEST(back.repo == u.repo);
	BOOST_TEST(back.run_id == u.run_id);
	BOOST_TEST(back.attempt == 2);
	BOOST_TEST(back.job == "linux");
	BOOST_TEST(back.commit_sha.value_or("") == "abc123");
	BOOST_TEST(!back.branch.has_value());
	BOOST_TEST(back.created_at == u.created_at);
	BOOST_REQUIRE(back.files.size() == 2u);
	BOOST_TEST(back.files[1].first == "b.xml");
	BOOST_TEST(back.files[1].second == u.files[1].second);
}

BOOST_AUTO_TEST_CASE(entry_refusals)
{
	const Fields good = encode_upload(sample_upload());
	BOOST_TEST(rejection(good) == "");
	BOOST_TEST(rejection({}) == "22023");                   /* empty entry */
	BOOST_TEST(rejection(without(good, "v")) == "22023");   /* no format */
	BOOST_TEST(rejection(with(good, "v", "2")) == "22023"); /* a future format */
	BOOST_TEST(rejection(without(good, "repo")) == "22023");
	BOOST_TEST(rejection(with(good, "repo", "")) == "22023");
	BOOST_TEST(rejection(without(good, "run_id")) == "22023");
	BOOST_TEST(rejection(with(good, "attempt", "abc")) == "22P02");
	BOOST_TEST(rejection(with(good, "attempt", "0")) == "22P02");
	BOOST_TEST(rejection(with(good, "attempt", "-1")) == "22P02");
	BOOST_TEST(rejection(with(good, "attempt", "99999999999999999999")) == "22P02");
	BOOST_TEST(rejection(with(good, "attempt", "1 ")) == "22P02");
	BOOST_TEST(rejection(without(good, "created_at")) == "22007");
	BOOST_TEST(rejection(with(good, "created_at", "yesterday")) == "22007");
	BOOST_TEST(rejection(with(good, "created_at", "2026-13-01T00:00:00Z")) == "22007");
	BOOST_TEST(rejection(with(good, "created_at", "2026-11-27T10:00:00")) == "22007"); /* no zone */
	BOOST_TEST(rejection(with(good, "files", "0")) == "22023");
	BOOST_TEST(rejection(with(good, "files", "x")) == "22023");
	BOOST_TEST(rejection(with(good, "files", "2")) == "22023"); /* report:1 missing */
	BOOST_TEST(rejection(without(good, "report:0")) == "22023");
	BOOST_TEST(rejection(with(good, "repo", std::string("bad\xff", 4))) == "22021");
	BOOST_TEST(rejection(with(good, "repo", std::string("nul\0x", 5))) == "22021");
	BOOST_TEST(rejection(with(good, "job", std::string(5000, 'j'))) == "54000");
	BOOST_TEST(rejection(good, 10) == "54000"); /* reports over the limit */
	/* job, commit and branch are optional; unknown fields are ignored */
	BOOST_TEST(rejection(with(without(without(good, "job"), "commit_sha"), "extra", "x")) == "");
}

BOOST_AUTO_TEST_CASE(timestamps)
{
	for (const char *t : {"2026-11-27T10:00:00Z", "2026-11-27 10:00:00+01", "2026-11-27T10:00:00.5-05:30",
						  "2026-11-27T10:00:00.123456+0100", "2026-11-27T23:59:60Z"})
		BOOST_TEST(valid_timestamp(t), t);
	for (const char *t : {"", "2026-11-27", "2026-11-27T10:00Z", "2026-11-27T10:00:00.Z",
						  "2026-11-27T10:00:00.1234567Z", "2026-11-27T24:00:00Z", "2026-00-27T10:00:00Z",
						  "2026-11-27T10:00:00+1", "2026-11-27T10:00:00Zjunk", "2026-11-27T10:00:00+01:0", "1e3"})
		BOOST_TEST(!valid_timestamp(t), t);
	/* what PostgreSQL would refuse: impossible days, year 0, zones beyond +-15:59 */
	for (const char *t :
		 {"2026-02-30T10:00:00Z", "2025-02-29T10:00:00Z", "1900-02-29T10:00:00Z", "0000-01-01T00:00:00Z",
		  "2026-04-31T10:00:00Z", "2026-11-27T10:00:00+16", "2026-11-27T10:00:00+01:60"})
		BOOST_TEST(!valid_timestamp(t), t);
	for (const char *t : {"2024-02-29T10:00:00Z", "2000-02-29T10:00:00Z", "2026-11-27T10:00:00-15:59"})
		BOOST_TEST(valid_timestamp(t), t);
	BOOST_TEST(valid_timestamp(timestamp_now()));
}

BOOST_AUTO_TEST_CASE(storable_texts)
{
	BOOST_TEST(storable_text(""));
	BOOST_TEST(storable_text("plain ascii"));
	BOOST_TEST(storable_text("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
	BOOST_TEST(!storable_text(std::string("a\0b", 3)));
	BOOST_TEST(!storable_text("\xff"));
	BOOST_TEST(!storable_text("\xc3"));             /* truncated */
	BOOST_TEST(!storable_text("\xc0\xaf"));         /* overlong */
	BOOST_TEST(!storable_text("\xe0\x80\xaf"));     /* overlong */
	BOOST_TEST(!storable_text("\xed\xa0\x80"));     /* surrogate */
	BOOST_TEST(!storable_text("\xf4\x90\x80\x80")); /* beyond U+10FFFF */
	BOOST_TEST(!storable_text("\xe2\x82"));
}

BOOST_AUTO_TEST_CASE(stage_rows_match_the_reader)
{
	Upload u = sample_upload();
	u.files = {{"a.xml", "<testsuite name=\"s\"><testcase classname=\"C\" name=\"t\" time=\"0.25\">"
						 "<failure message=\"tab&#9;here&#10;newline \\ backslash\" type=\"E\"/></testcase>"
						 "<testcase name=\"u\"><skipped/></testcase></testsuite>"}};
	Staged s = stage_upload(u, flakeguard::JunitLimits{});
	BOOST_TEST(s.executions == 2u);
	auto r = rows(s.copy);
	BOOST_REQUIRE(r.size() == 2u);
	BOOST_REQUIRE(r[0].size() == 12u);
	BOOST_TEST(r[0][0] == std::to_string(static_cast<std::int64_t>(flakeguard::test_id("C.t"))));
	BOOST_TEST(r[0][1] == "s");
	BOOST_TEST(r[0][2] == "C");
	BOOST_TEST(r[0][4] == "C.t");
	BOOST_TEST(r[0][5] == "\\N"); /* no file */
	BOOST_TEST(r[0][6] == "failed");
	BOOST_TEST(r[0][7] == "0");
	BOOST_TEST(r[0][8] == "250");
	BOOST_TEST(r[0][9] == "E");
	BOOST_TEST(r[0][10] == "tab\\there\\nnewline \\\\ backslash");
	BOOST_TEST(r[0][11] == "f");
	BOOST_TEST(r[1][2] == "s"); /* no classname: the suite's name, as the reader says */
	BOOST_TEST(r[1][6] == "skipped");
	BOOST_TEST(r[1][8] == "\\N");
}

BOOST_AUTO_TEST_CASE(files_of_one_upload_continue_retries)
{
	Upload u = sample_upload();
	const std::string a =
		"<testsuite><testcase classname=\"C\" name=\"t\"><failure/></testcase>"
		"<testcase classname=\"C\" name=\"t\"/><testcase classname=\"C\" name=\"only_a\"/></testsuite>";
	const std::string b = "<testsuite><testcase classname=\"C\" name=\"t\"/><testcase classname=\"C\" name=\"only_b\"/>"
						  "</testsuite>";
	u.files = {{"a.xml", a}, {"b.xml", b}};
	auto r = rows(stage_upload(u, flakeguard::JunitLimits{}).copy);
	BOOST_REQUIRE(r.size() == 5u);
	std::vector<std::pair<std::string, std::string>> got;
	for (const auto &row : r)
		got.emplace_back(row[4], row[7]);
	std::vector<std::pair<std::string, std::string>> want = {
		{"C.t", "0"}, {"C.t", "1"}, {"C.only_a", "0"}, {"C.t", "2"}, {"C.only_b", "0"}};
	BOOST_TEST(got == want);
	/* one file alone numbers as the reader does */
	u.files = {{"b.xml", b}};
	BOOST_TEST(rows(stage_upload(u, flakeguard::JunitLimits{}).copy)[0][7] == "0");
}

BOOST_AUTO_TEST_CASE(stage_refuses_bad_reports)
{
	Upload u = sample_upload();
	for (const std::string &bad :
		 {std::string(""), std::string("<testsuite><testcase name=\"a\">"), std::string("not xml at all"),
		  std::string("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><testsuite>&e;</testsuite>")}) {
		u.files = {{"bad.xml", bad}};
		BOOST_CHECK_THROW(stage_upload(u, flakeguard::JunitLimits{}), flakeguard::Error);
	}
	flakeguard::JunitLimits small;
	small.max_report_size = 16;
	u = sample_upload();
	BOOST_CHECK_THROW(stage_upload(u, small), flakeguard::Error);
}

/* decode_upload(Fields &&) moves the reports instead of copying them, and moves nothing when it rejects */
BOOST_AUTO_TEST_CASE(decode_moves_reports)
{
	Upload u = sample_upload();
	u.files.push_back({"b.xml", std::string(100000, 'x')});
	Fields fields = encode_upload(u);
	Upload copied = decode_upload(fields, 1 << 20);
	Upload moved = decode_upload(std::move(fields), 1 << 20);
	BOOST_TEST(moved.files == copied.files);
	BOOST_TEST(moved.repo == copied.repo);
	for (const auto &f : fields)
		if (f.first.rfind("report:", 0) == 0)
			BOOST_TEST(f.second.empty());
		else if (f.first == "repo")
			BOOST_TEST(f.second == "acme/checkout");
	/* rejected (too large): every field is left as it was */
	fields = encode_upload(u);
	const Fields before = fields;
	BOOST_CHECK_THROW(decode_upload(std::move(fields), 1000), EntryError);
	BOOST_TEST(fields == before);
	fields = without(encode_upload(u), "created_at");
	BOOST_CHECK_THROW(decode_upload(std::move(fields), 1 << 20), EntryError);
	BOOST_TEST(fields.size() == before.size() - 1);
	BOOST_TEST(fields.back().second == std::string(100000, 'x'));
}

/* rows repeat the suite's name: a report whose rows would exceed twice the size limit is refused */
BOOST_AUTO_TEST_CASE(stage_bounds_rows)
{
	Upload u = sample_upload();
	std::string report = "<testsuite name=\"" + std::string(3000, 's') + "\">";
	for (int i = 0; i < 200; i++)
		report += "<testcase classname=\"C\" name=\"t" + std::to_string(i) + "\"/>";
	report += "</testsuite>";
	u.files = {{"a.xml", report}};
	flakeguard::JunitLimits limits;
	limits.max_report_size = report.size() + 10; /* the report fits, its 200 rows of 3000 bytes do not */
	try {
		stage_upload(u, limits);
		BOOST_FAIL("rows beyond twice the report limit were staged");
	} catch (const flakeguard::Error &e) {
		BOOST_TEST(std::string(e.sqlstate()) == "54000");
	}
	limits.max_report_size = 1 << 20;
	BOOST_TEST(stage_upload(u, limits).executions == 200u);
}

BOOST_AUTO_TEST_CASE(copy_text_escaping)
{
	std::string out;
	copy_text_field(out, std::string_view("a\\b\tc\nd\re"));
	BOOST_TEST(out == "a\\\\b\\tc\\nd\\re");
	out.clear();
	copy_text_field(out, std::optional<std::string_view>());
	BOOST_TEST(out == "\\N");
}

BOOST_AUTO_TEST_CASE(redis_urls)
{
	RedisEndpoint e = parse_redis_url("redis://127.0.0.1:6380/2");
	BOOST_TEST(e.host == "127.0.0.1");
	BOOST_TEST(e.port == 6380);
	BOOST_TEST(e.db == 2);
	e = parse_redis_url("redis://:s3cret@cache.internal");
	BOOST_TEST(e.password == "s3cret");
	BOOST_TEST(e.host == "cache.internal");
	BOOST_TEST(e.port == 6379);
	e = parse_redis_url("unix:///run/redis/redis.sock?db=3");
	BOOST_TEST(e.unix_path == "/run/redis/redis.sock");
	BOOST_TEST(e.db == 3);
	for (const char *bad : {"http://x", "redis://host:0", "redis://host:70000", "redis://host:port", "redis://h/x",
							"unix://relative.sock", ""})
		BOOST_CHECK_THROW(parse_redis_url(bad), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(backoff_grows_capped_with_jitter)
{
	Backoff b(100, 1000);
	std::int64_t ceiling = 100;
	for (int i = 0; i < 10; i++) {
		std::int64_t d = b.next_ms();
		BOOST_TEST(d >= ceiling / 2);
		BOOST_TEST(d <= ceiling);
		ceiling = std::min<std::int64_t>(ceiling * 2, 1000);
	}
	b.reset();
	BOOST_TEST(b.next_ms() <= 100);
}

BOOST_AUTO_TEST_CASE(reply_field)
{
	Upload u = sample_upload();
	BOOST_TEST(!wants_reply(encode_upload(u)));
	u.reply = true;
	const Fields f = encode_upload(u);
	BOOST_TEST(wants_reply(f));
	BOOST_TEST(rejection(f) == ""); /* the reply field is part of format 1 */
	BOOST_TEST(!wants_reply(with(f, "reply", "yes")));
	BOOST_TEST(!wants_reply(with(f, "reply", "")));
}

BOOST_AUTO_TEST_CASE(outcome_round_trip)
{
	Outcome ok;
	ok.entry = "1700000000000-0";
	ok.ingested = true;
	BOOST_TEST(encode_outcome(ok) == R"({"entry":"1700000000000-0","status":"ingested"})");
	Outcome back = decode_outcome(encode_outcome(ok));
	BOOST_TEST(back.ingested);
	BOOST_TEST(back.entry == ok.entry);

	Outcome no;
	no.entry = "1-2";
	/* quotes, control characters and bytes that are not UTF-8 (a repository name in an error) */
	no.rejection =
		Rejection{"2200M", "JUnit report is truncated \"x\"\n\x01", std::string("repo \xff\xfe\xc3\xa9", 9), ""};
	no.rejected_id = 42;
	back = decode_outcome(encode_outcome(no));
	BOOST_TEST(!back.ingested);
	BOOST_TEST(back.rejection.sqlstate == "2200M");
	BOOST_TEST(back.rejection.error == no.rejection.error);
	BOOST_TEST(back.rejection.detail == "repo \xEF\xBF\xBD\xEF\xBF\xBD\xc3\xa9");
	BOOST_TEST(back.rejection.hint == "");
	BOOST_TEST(back.rejected_id.value_or(0) == 42);
	no.rejected_id.reset();
	BOOST_TEST(!decode_outcome(encode_outcome(no)).rejected_id.has_value());

	for (const char *bad : {"", "[]", R"({"status":"ingested"})", R"({"entry":"1-0","status":"maybe"})",
							R"({"entry":"1-0","status":"rejected","error":"e"})",
							R"({"entry":"1-0","status":"rejected","sqlstate":"x","error":"e","rejected_id":"7"})",
							R"({"entry":"1-0","status":"rejected","sqlstate":"x","error":"e","rejected_id":1.5})"})
		BOOST_CHECK_THROW(decode_outcome(bad), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(json_strings)
{
	BOOST_TEST(json_string("a\"b\\c\td\x7f") == R"("a\"b\\c\td\u007f")");
	/* overlong, surrogate, truncated: each byte U+FFFD; four-byte sequences kept */
	BOOST_TEST(json_string("\xc0\xaf") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
	BOOST_TEST(json_string("\xed\xa0\x80").size() == 2 + 9u);
	BOOST_TEST(json_string("\xe2\x82") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
	BOOST_TEST(json_string("\xf0\x9f\x98\x80") == "\"\xf0\x9f\x98\x80\"");
	for (const std::string &s : {std::string("plain"), std::string("nul\0byte", 8), std::string("\xff")})
		BOOST_TEST((parse_json(json_string(s)).type == Json::Type::string));
}

BOOST_AUTO_TEST_CASE(pg_error_classes)
{
	BOOST_TEST(PgError("40P01", "deadlock").transient());
	BOOST_TEST(PgError("08006", "lost").transient());
	BOOST_TEST(PgError("57P01", "admin shutdown").transient());
	BOOST_TEST(PgError("XX000", "x", {}, {}, true).transient());
	BOOST_TEST(!PgError("22023", "bad argument").transient());
	BOOST_TEST(!PgError("42883", "no such function").transient());
	/* what dead-letters a report, and what only makes the batch wait */
	BOOST_TEST(PgError("22P04", "bad copy data").data_error());
	BOOST_TEST(PgError("23505", "collision").data_error());
	BOOST_TEST(PgError("54000", "too large").data_error());
	BOOST_TEST(PgError("XX000", "internal").data_error());
	BOOST_TEST(!PgError("42703", "undefined column").data_error());
	BOOST_TEST(!PgError("42501", "permission denied").data_error());
	BOOST_TEST(!PgError("40P01", "deadlock").data_error());
	BOOST_TEST(!PgError("22023", "lost", {}, {}, true).data_error());
}

BOOST_AUTO_TEST_SUITE_END()
