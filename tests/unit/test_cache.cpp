/*
 * test_cache.cpp
 *	  Unit tests of the cache protocol's PostgreSQL- and Redis-free parts
 *	  (sidecar/src/cache.cpp, json.cpp, metrics.cpp).
 */
#include <boost/test/unit_test.hpp>

#include "cache.hpp"
#include "json.hpp"
#include "metrics.hpp"

#include <string>
#include <vector>

using namespace flakeguard::sidecar;

BOOST_AUTO_TEST_SUITE(cache)

BOOST_AUTO_TEST_CASE(key_names)
{
	CacheKeys k{"fg:"};
	BOOST_TEST(k.version("acme/checkout") == "fg:{acme/checkout}:v");
	BOOST_TEST(k.health("acme/checkout", -42) == "fg:{acme/checkout}:health:-42");
	BOOST_TEST(k.history("r", 7) == "fg:{r}:history:7");
	BOOST_TEST(k.stats("r") == "fg:{r}:stats");
	BOOST_TEST(k.quarantine("r") == "fg:{r}:quarantine");
	/* the name is escaped: no '{', '}', ':' or glob character is left in the tag */
	BOOST_TEST(escape_repo("a%b{c}d:e*f?g[h]i\\j k\tl\x7fm") == "a%25b%7Bc%7Dd%3Ae%2Af%3Fg%5Bh%5Di%5Cj%20k%09l%7Fm");
	BOOST_TEST(escape_repo(std::string("a\0b", 3)) == "a%00b");
	BOOST_TEST(escape_repo("caf\xc3\xa9") == "caf\xc3\xa9");
	BOOST_TEST(k.version("pre:victim") == "fg:{pre%3Avictim}:v");
	BOOST_TEST(k.pattern("pre") == "fg:{pre}:*");
	BOOST_TEST(k.pattern("a*b?[c]\\d") == "fg:{a%2Ab%3F%5Bc%5D%5Cd}:*");
	/* glob characters of the prefix match only themselves */
	BOOST_TEST(CacheKeys{"x["}.pattern("r") == "x\\[{r}:*");
}

/* No repository's keys start with another's key prefix, and all of one repository's keys share one hash tag. */
BOOST_AUTO_TEST_CASE(key_names_unambiguous)
{
	CacheKeys k{"fg:"};
	const std::vector<std::string> names = {"pre", "pre:victim", "pre:", "pre}", "pre{x}", "pre%3Avictim", "p*",
											"p",   "",           "a}:b", "a",    "{a}",    "x y"};
	for (const auto &a : names)
		for (const auto &b : names) {
			if (a == b)
				continue;
			const std::string pa = k.base(a), kb = k.health(b, 1);
			BOOST_TEST(kb.compare(0, pa.size(), pa) != 0, "\"" << b << "\"'s key starts with \"" << a << "\"'s prefix");
		}
	for (const auto &a : names) {
		/* the hash tag: from the first '{' to the next '}' */
		auto tag = [](const std::string &key) {
			auto open = key.find('{');
			return key.substr(open + 1, key.find('}', open + 1) - open - 1);
		};
		BOOST_TEST(tag(k.version(a)) == escape_repo(a));
		BOOST_TEST(tag(k.health(a, -1)) == tag(k.version(a)));
		BOOST_TEST(tag(k.quarantine(a)) == tag(k.version(a)));
	}
}

BOOST_AUTO_TEST_CASE(hints)
{
	/* 0.4.0 names the repository by repo_id, as text */
	Hint h = parse_hint(R"({"repo_id" : "7", "version" : 42, "at" : 1795822017.5, "tests" : ["1", "-2"]})");
	BOOST_TEST(h.repo.empty());
	BOOST_TEST(*h.repo_id == 7);
	BOOST_TEST(*parse_hint(R"({"repo_id":9223372036854775807,"version":3,"tests":"all"})").repo_id ==
			   9223372036854775807);
	/* before 0.4.0: by name */
	h = parse_hint(R"({"repo" : "demo/a", "version" : 42, "at" : 1795822017.5, "tests" : ["1", "-2"]})");
	BOOST_TEST(h.repo == "demo/a");
	BOOST_TEST(!h.repo_id);
	BOOST_TEST(h.version == 42);
	BOOST_TEST(h.at == 1795822017.5);
	BOOST_TEST(!h.all);
	BOOST_TEST(h.tests == (std::vector<std::int64_t>{1, -2}));
	h = parse_hint(R"({"repo":"r","version":3,"tests":"all"})");
	BOOST_TEST(h.all);
	BOOST_TEST(h.at == 0);
	/* a 0.1.0 payload (no "at") and a null list (no tests given) */
	BOOST_TEST(parse_hint(R"({"repo":"r","version":3,"tests":null})").all);
	BOOST_TEST(parse_hint(R"({"repo":"r\u00e9","version":3,"tests":[]})").repo == "r\xc3\xa9");
	for (const char *bad :
		 {"", "not json", "[]", R"({"repo":"r","tests":"all"})", R"({"repo":"r","version":null,"tests":"all"})",
		  R"({"repo":1,"version":3,"tests":"all"})", R"({"repo":"r","version":3})",
		  R"({"repo":"r","version":3,"tests":"some"})", R"({"repo":"r","version":3,"tests":[{}]})",
		  R"({"repo":"r","version":3,"tests":["x"]})", R"({"repo":"r","version":99999999999999999999,"tests":"all"})",
		  R"({"repo":"r","version":3,"tests":"all"} x)", R"({"repo_id":"x","version":3,"tests":"all"})",
		  R"({"repo_id":null,"version":3,"tests":"all"})",
		  R"({"repo_id":"99999999999999999999","version":3,"tests":"all"})",
		  R"({"repo_id":[],"version":3,"tests":"all"})"})
		BOOST_CHECK_THROW(parse_hint(bad), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(json_reader)
{
	Json j = parse_json(R"( {"a": [1, -2.5e3, true, false, null, "s\"\\\/\b\f\n\r\t\ud83d\ude00"], "b": {}} )");
	BOOST_REQUIRE(j.type == Json::Type::object);
	const Json *a = j.find("a");
	BOOST_REQUIRE(a != nullptr);
	BOOST_REQUIRE(a->items.size() == 6u);
	BOOST_TEST(a->items[1].text == "-2.5e3");
	BOOST_TEST(a->items[2].boolean);
	BOOST_TEST(a->items[5].text == "s\"\\/\b\f\n\r\t\xf0\x9f\x98\x80");
	BOOST_TEST(j.find("c") == nullptr);
	for (const char *bad : {"{", "[1,]", "{\"a\" 1}", "\"\\ud800\"", "\"\\x\"", "\"a\nb\"", "tru", "{} {}"})
		BOOST_CHECK_THROW(parse_json(bad), std::invalid_argument);
	/* nesting is bounded: no stack overflow on hostile input */
	BOOST_CHECK_THROW(parse_json(std::string(100000, '[')), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(metrics_text)
{
	Metrics m;
	m.executions += 1500;
	m.dead_letters++;
	m.invalidation_seconds.observe(0.003);
	m.invalidation_seconds.observe(0.04);
	std::string text = m.render();
	BOOST_TEST(text.find("flakeguard_sidecar_executions_total 1500\n") != std::string::npos);
	BOOST_TEST(text.find("flakeguard_sidecar_dead_letters_total 1\n") != std::string::npos);
	BOOST_TEST(text.find("flakeguard_sidecar_invalidation_seconds_bucket{le=\"0.005\"} 1\n") != std::string::npos);
	BOOST_TEST(text.find("flakeguard_sidecar_invalidation_seconds_bucket{le=\"0.05\"} 2\n") != std::string::npos);
	BOOST_TEST(text.find("flakeguard_sidecar_invalidation_seconds_count 2\n") != std::string::npos);
	BOOST_TEST(text.find("# TYPE flakeguard_sidecar_batch_seconds histogram") != std::string::npos);
	/* liveness: a loop that has not turned for long is stuck */
	BOOST_TEST(m.alive(100000, 30000)); /* not started */
	m.ingest_heartbeat_ms = 90000;
	BOOST_TEST(m.alive(100000, 30000));
	BOOST_TEST(!m.alive(200000, 30000));
}

BOOST_AUTO_TEST_CASE(http_answers)
{
	Metrics m;
	m.cache_pg_up = m.cache_redis_up = m.ingest_pg_up = m.ingest_redis_up = true; /* healthy when connected */
	std::string body, type;
	BOOST_TEST(MetricsServer::answer(m, "GET", "/healthz", body, type) == 200);
	BOOST_TEST(body == "ok\n");
	m.cache_redis_up = false;
	BOOST_TEST(MetricsServer::answer(m, "GET", "/metrics", body, type) == 200);
	BOOST_TEST(type == "text/plain; version=0.0.4");
	BOOST_TEST(body.find("flakeguard_sidecar_up{loop=\"cache\",server=\"redis\"} 0\n") != std::string::npos);
	BOOST_TEST(MetricsServer::answer(m, "GET", "/nope", body, type) == 404);
	BOOST_TEST(MetricsServer::answer(m, "POST", "/metrics", body, type) == 405);
	m.cache_redis_up = true;
	m.cache_heartbeat_ms = monotonic_ms() - 60000; /* a loop stuck for a minute */
	BOOST_TEST(MetricsServer::answer(m, "GET", "/healthz", body, type) == 503);
}

BOOST_AUTO_TEST_SUITE_END()
