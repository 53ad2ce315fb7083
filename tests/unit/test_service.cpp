/*
 * test_service.cpp
 *	  Unit tests of the sidecar as a service, without PostgreSQL or Redis:
 *	  the --config file's parser (sidecar/src/settings.cpp), one-line log
 *	  messages (log.cpp), /healthz and /readyz, the new metrics and the
 *	  metrics server's addresses (metrics.cpp), stream ids' times.
 */
#include <boost/test/unit_test.hpp>

#include "config.hpp"
#include "ingest_stream.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "settings.hpp"
#include "stop.hpp"

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace flakeguard::sidecar;

namespace {

const std::set<std::string> known = {"FLAKEGUARD_PG", "FLAKEGUARD_BATCH_SIZE", "FLAKEGUARD_REFRESH",
									 "FLAKEGUARD_PREFIX"};

Settings
parse(const std::string &text)
{
	return parse_settings(text, "test.conf", known);
}

/* the message parse() throws for text, or "" */
std::string
error_of(const std::string &text, int *line = nullptr)
{
	try {
		parse(text);
	} catch (const SettingsError &e) {
		if (line != nullptr)
			*line = e.line;
		return e.what();
	}
	return "";
}

bool
contains(const std::string &s, const std::string &part)
{
	return s.find(part) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_SUITE(service)

BOOST_AUTO_TEST_CASE(settings_plain_quoted_and_commented)
{
	Settings s = parse("# the sidecar\n"
					   "\n"
					   "   \t\n"
					   "FLAKEGUARD_BATCH_SIZE=500\n"
					   "export FLAKEGUARD_PG=\"host=db user='x' pass=a\\\"b\\\\c\"  # a comment\n"
					   "  FLAKEGUARD_PREFIX='fg:$x \"'\r\n"
					   "FLAKEGUARD_REFRESH=");
	BOOST_TEST_REQUIRE(s.size() == 4u);
	BOOST_TEST(s[0].first == "FLAKEGUARD_BATCH_SIZE");
	BOOST_TEST(s[0].second == "500");
	BOOST_TEST(s[1].first == "FLAKEGUARD_PG");
	BOOST_TEST(s[1].second == "host=db user='x' pass=a\"b\\c");
	BOOST_TEST(s[2].second == "fg:$x \"");
	BOOST_TEST(s[3].second == "");
	/* '#' inside a word is the word's, as in the shell */
	BOOST_TEST(parse("FLAKEGUARD_PREFIX=a#b").at(0).second == "a#b");
	BOOST_TEST(parse("FLAKEGUARD_PREFIX=a'b c'd").at(0).second == "ab cd");
}

BOOST_AUTO_TEST_CASE(settings_empty)
{
	BOOST_TEST(parse("").empty());
	BOOST_TEST(parse("\n\n# only comments\n").empty());
}

BOOST_AUTO_TEST_CASE(settings_malformed_lines_name_their_line)
{
	int line = 0;
	BOOST_TEST(contains(error_of("# ok\nFLAKEGUARD_BATCH_SIZE\n", &line), "test.conf\" line 2: expected '='"));
	BOOST_TEST(line == 2);
	BOOST_TEST(contains(error_of("FLAKEGUARD_BATCH_SIZE = 5"), "space before '='"));
	BOOST_TEST(contains(error_of("=5"), "line 1: expected KEY=VALUE"));
	BOOST_TEST(contains(error_of("1FLAKEGUARD=5"), "expected KEY=VALUE"));
	BOOST_TEST(contains(error_of("FLAKEGUARD_PG=\"host=x"), "unterminated double quote"));
	BOOST_TEST(contains(error_of("FLAKEGUARD_PG='host=x"), "unterminated single quote"));
	BOOST_TEST(contains(error_of("FLAKEGUARD_PG=host=x dbname=y"), "text after the value"));
	BOOST_TEST(contains(error_of("FLAKEGUARD_PG=$HOME"), "variable expansion"));
	BOOST_TEST(contains(error_of("FLAKEGUARD_PG=\"${HOME}\""), "variable expansion"));
	BOOST_TEST(contains(error_of("FLAKEGUARD_PG=`id`"), "variable expansion"));
	BOOST_TEST(contains(error_of("FLAKEGUARD_PG=a;rm"), "unquoted ';'"));
	BOOST_TEST(contains(error_of("FLAKEGUARD_PG=a\\"), "continuation"));
	BOOST_TEST(contains(error_of("\n\nFLAKEGUARD_PG=a\x01", &line), "line 3: control character (byte 1)"));
	BOOST_TEST(line == 3);
	BOOST_TEST(contains(error_of(std::string("FLAKEGUARD_PG=a\0b", 17)), "control character (byte 0)"));
}

BOOST_AUTO_TEST_CASE(settings_unknown_keys_and_duplicates)
{
	int line = 0;
	BOOST_TEST(contains(error_of("FLAKEGUARD_BATCH_SIZE=1\nFLAKEGUARD_BATCHSIZE=2\n", &line),
						"line 2: unknown setting \"FLAKEGUARD_BATCHSIZE\""));
	BOOST_TEST(line == 2);
	BOOST_TEST(contains(error_of("PATH=/bin"), "unknown setting \"PATH\""));
	BOOST_TEST(contains(error_of("flakeguard_pg=x"), "unknown setting"));
	BOOST_TEST(contains(error_of("FLAKEGUARD_PG=a\n# x\nexport FLAKEGUARD_PG=b\n", &line),
						"line 3: \"FLAKEGUARD_PG\" is set twice (also on line 1)"));
	BOOST_TEST(line == 3);
}

BOOST_AUTO_TEST_CASE(settings_oversized_and_unreadable)
{
	std::string big;
	while (big.size() <= max_settings_file_size)
		big += "# padding padding padding padding padding padding padding\n";
	int line = -1;
	BOOST_TEST(contains(error_of(big, &line), "is larger than"));
	BOOST_TEST(line == 0);
	/* a long value within the limit is fine */
	std::string long_value = "FLAKEGUARD_PG='" + std::string(max_settings_file_size - 100, 'x') + "'";
	BOOST_TEST(parse(long_value).at(0).second.size() == max_settings_file_size - 100);

	char path[] = "/tmp/fg-settings-XXXXXX";
	const int fd = mkstemp(path);
	BOOST_TEST_REQUIRE(fd >= 0);
	BOOST_TEST(write(fd, big.data(), big.size()) == static_cast<ssize_t>(big.size()));
	close(fd);
	try {
		read_settings(path, known);
		BOOST_TEST(false);
	} catch (const SettingsError &e) {
		BOOST_TEST(contains(e.what(), "is larger than"));
	}
	{
		std::ofstream out(path, std::ios::trunc);
		out << "FLAKEGUARD_BATCH_SIZE=7\n";
	}
	BOOST_TEST(read_settings(path, known).at(0).second == "7");
	unlink(path);
	try {
		read_settings(path, known);
		BOOST_TEST(false);
	} catch (const SettingsError &e) {
		BOOST_TEST(contains(e.what(), "could not read config file"));
		BOOST_TEST(contains(e.what(), "No such file"));
	}
	try {
		read_settings("/tmp", known);
		BOOST_TEST(false);
	} catch (const SettingsError &e) {
		BOOST_TEST(contains(e.what(), "not a regular file"));
	}
}

BOOST_AUTO_TEST_CASE(live_settings_copy_and_assign)
{
	Config a;
	a.batch_size = 5;
	Config b = a;
	BOOST_TEST(b.batch_size.get() == 5u);
	b.batch_size = 7;
	a = b;
	BOOST_TEST(static_cast<std::size_t>(a.batch_size) == 7u);
	BOOST_TEST(!a.refresh);
}

BOOST_AUTO_TEST_CASE(log_lines_stay_one_line)
{
	BOOST_TEST(log_escape("plain") == "plain");
	BOOST_TEST(log_escape("") == "");
	BOOST_TEST(log_escape("ERROR:  x\nDETAIL:  y\n") == "ERROR:  x\\nDETAIL:  y");
	BOOST_TEST(log_escape("a\r\nb\tc\x1b[31m") == "a\\r\\nb\tc\\x1b[31m");
	BOOST_TEST(log_escape("\n\n") == "");
	BOOST_TEST(log_escape("literal \\n stays") == "literal \\n stays");
	/* what a terminal or a log viewer acts on: DEL, C1 (NEL), U+2028, U+2029 */
	BOOST_TEST(log_escape("a\x7f"
						  "b") == "a\\x7fb");
	BOOST_TEST(log_escape("a\xc2\x85"
						  "b\xc2\x9b"
						  "c") == "a\\xc2\\x85b\\xc2\\x9bc");
	BOOST_TEST(log_escape("a\xe2\x80\xa8"
						  "b\xe2\x80\xa9"
						  "c") == "a\\xe2\\x80\\xa8b\\xe2\\x80\\xa9c");
	/* other UTF-8 stays as it is, a cut sequence too */
	BOOST_TEST(log_escape("caf\xc3\xa9 \xe2\x80\x94 \xc2\xa0") == "caf\xc3\xa9 \xe2\x80\x94 \xc2\xa0");
	BOOST_TEST(log_escape("end\xc2") == "end\xc2");
	BOOST_TEST(log_escape("end\xe2\x80") == "end\xe2\x80");
}

BOOST_AUTO_TEST_CASE(stream_ids_times)
{
	BOOST_TEST(stream_id_ms("1700000000000-0") == 1700000000000);
	BOOST_TEST(stream_id_ms("1700000000000") == 1700000000000);
	BOOST_TEST(stream_id_ms("0-0") == 0);
	BOOST_TEST(stream_id_ms("") == -1);
	BOOST_TEST(stream_id_ms("-1") == -1);
	BOOST_TEST(stream_id_ms("12-") == -1);
	BOOST_TEST(stream_id_ms("12-x") == -1);
	BOOST_TEST(stream_id_ms("abc-1") == -1);
	BOOST_TEST(stream_id_ms("99999999999999999999999-0") == -1); /* too long for an int64 */
}

BOOST_AUTO_TEST_CASE(health_and_readiness)
{
	Metrics m;
	std::string body, type;
	BOOST_TEST(MetricsServer::answer(m, "GET", "/healthz", body, type) == 503);
	BOOST_TEST(body == "not connected: cache: PostgreSQL, cache: Redis, ingest: PostgreSQL, ingest: Redis\n");
	m.cache_pg_up = m.cache_redis_up = m.ingest_pg_up = true;
	BOOST_TEST(MetricsServer::answer(m, "GET", "/healthz", body, type) == 503);
	BOOST_TEST(body == "not connected: ingest: Redis\n");
	m.ingest_redis_up = true;
	BOOST_TEST(MetricsServer::answer(m, "GET", "/healthz", body, type) == 200);
	BOOST_TEST(body == "ok\n");
	BOOST_TEST(MetricsServer::answer(m, "GET", "/readyz", body, type) == 503);
	BOOST_TEST(body == "starting\n");
	m.ready = true;
	BOOST_TEST(MetricsServer::answer(m, "GET", "/readyz", body, type) == 200);
	BOOST_TEST(MetricsServer::answer(m, "HEAD", "/readyz", body, type) == 200);
	BOOST_TEST(MetricsServer::answer(m, "POST", "/readyz", body, type) == 405);
	m.cache_heartbeat_ms = monotonic_ms() - 60000;
	BOOST_TEST(MetricsServer::answer(m, "GET", "/readyz", body, type) == 503);
	BOOST_TEST(body == "a worker loop is stuck\n");
}

BOOST_AUTO_TEST_CASE(new_metrics)
{
	Metrics m;
	std::string text = m.render();
	BOOST_TEST(contains(text, std::string("flakeguard_sidecar_build_info{version=\"") + FG_VERSION + "\"} 1\n"));
	/* the backlog is left out until it is known */
	BOOST_TEST(!contains(text, "flakeguard_sidecar_stream_"));
	for (const char *name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ",
							 "process_virtual_memory_bytes ", "process_open_fds ", "process_start_time_seconds "})
		BOOST_TEST(contains(text, std::string("\n") + name), name);
	BOOST_TEST(contains(text, "# TYPE process_cpu_seconds_total counter\n"));
	m.stream_undelivered = 3;
	m.stream_pending = 2;
	m.stream_oldest_unacked_ms = 0;
	text = m.render();
	BOOST_TEST(contains(text, "\nflakeguard_sidecar_stream_undelivered_entries 3\n"));
	BOOST_TEST(contains(text, "\nflakeguard_sidecar_stream_pending_entries 2\n"));
	BOOST_TEST(contains(text, "\nflakeguard_sidecar_stream_backlog_entries 5\n"));
	BOOST_TEST(contains(text, "\nflakeguard_sidecar_stream_lag_seconds 0\n"));
	m.stream_oldest_unacked_ms = static_cast<std::int64_t>(wall_seconds() * 1000) - 90000;
	text = m.render();
	const std::size_t at = text.find("\nflakeguard_sidecar_stream_lag_seconds ");
	BOOST_TEST_REQUIRE(at != std::string::npos);
	const double lag = std::stod(text.substr(at + 39));
	BOOST_TEST(lag >= 90);
	/* every sample line is NAME[{labels}] VALUE */
	std::size_t pos = 0;
	while (pos < text.size()) {
		std::size_t end = text.find('\n', pos);
		BOOST_TEST_REQUIRE(end != std::string::npos);
		std::string line = text.substr(pos, end - pos);
		pos = end + 1;
		if (line.rfind("# ", 0) == 0)
			continue;
		BOOST_TEST(line.find(' ') != std::string::npos, line);
		BOOST_TEST(line.find(' ') == line.rfind(' '), line);
	}
}

BOOST_AUTO_TEST_CASE(metrics_server_addresses)
{
	Metrics m;
	for (const char *bad : {"", "localhost", "127.0.0.256", "[::1", "::1]", "[]", "1.2.3.4.5", "[127.0.0.1]x"}) {
		MetricsServer s(m);
		BOOST_TEST(!s.listen(bad, 0), bad);
		BOOST_TEST(contains(s.error(), "invalid address"), bad);
	}
	/* port 0: the kernel picks one; both families and dual stack start */
	for (const char *good : {"127.0.0.1", "::1", "[::1]", "::"}) {
		MetricsServer s(m);
		BOOST_TEST(s.listen(good, 0), good << ": " << s.error());
		s.stop();
	}
}

BOOST_AUTO_TEST_SUITE_END()
