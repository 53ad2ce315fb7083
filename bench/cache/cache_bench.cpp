/*
 * cache_bench.cpp
 *	  The Redis cache, measured against a running PostgreSQL, Redis and
 *	  flakeguard-sidecar (bench/cache/cache_bench.sh starts them):
 *
 *	  cache_bench lookup REPO TESTS N
 *	      read-through lookup latency (flakeguard::sidecar::lookup_health, as
 *	      `flakeguard-sidecar lookup` runs it): N misses (key unlinked first)
 *	      and N hits over the first TESTS tests of REPO; the test_health
 *	      query a reader without the cache runs is the baseline.
 *	  cache_bench invalidation REPO N
 *	      COMMIT-to-key-gone: fill a test's key, commit a change of that test
 *	      (ingest_junit, autocommit), poll Redis until the key is gone; N times.
 *	  cache_bench mix REPO TESTS LOOKUPS WRITE_EVERY CHANGED
 *	      hit rate in a steady mix: LOOKUPS lookups of random tests (Zipf-like)
 *	      while every WRITE_EVERY lookups an upload changes CHANGED random tests.
 *
 *	  Connections from FLAKEGUARD_PG and FLAKEGUARD_REDIS.  Prints
 *	  "key value" lines (milliseconds, rates) for the script to format.
 */
#include "cache.hpp"
#include "pg.hpp"
#include "redis.hpp"
#include "stop.hpp"

#include "flakeguard/core/test_id.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace flakeguard::sidecar;

namespace {

double
now_ms()
{
	return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double
pct(std::vector<double> v, double p)
{
	if (v.empty())
		return NAN;
	std::sort(v.begin(), v.end());
	std::size_t i = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
	return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

void
report(const char *what, const std::vector<double> &ms)
{
	std::printf("%s_p50 %.3f\n%s_p95 %.3f\n%s_p99 %.3f\n%s_max %.3f\n%s_n %zu\n", what, pct(ms, 50), what, pct(ms, 95),
				what, pct(ms, 99), what, pct(ms, 100), what, ms.size());
}

std::vector<std::string>
test_names(PgConn &pg, const std::string &repo, int limit)
{
	PgResult r = pg.exec("SELECT full_name FROM flakeguard.test_health WHERE repo = $1 ORDER BY full_name LIMIT $2",
						 {repo, std::to_string(limit)});
	std::vector<std::string> names;
	for (int i = 0; i < PQntuples(r.get()); i++)
		names.push_back(*pg_value(r.get(), i, 0));
	return names;
}

/* An upload in which the given tests of the suite fail once more (a new run). */
std::string
change_report(const std::vector<std::string> &tests)
{
	std::string doc = "<testsuite name=\"bench\">";
	for (const auto &t : tests) {
		auto dot = t.rfind('.');
		doc += "<testcase classname=\"" + t.substr(0, dot) + "\" name=\"" + t.substr(dot + 1) +
			   "\"><failure message=\"changed\"/></testcase>";
	}
	return doc + "</testsuite>";
}

int run_id_seq = 0;

void
commit_change(PgConn &pg, const std::string &repo, const std::vector<std::string> &tests)
{
	pg.exec(
		"SELECT flakeguard.ingest_junit($1, $2::text, $3)",
		{repo, change_report(tests), "bench-change-" + std::to_string(getpid()) + "-" + std::to_string(++run_id_seq)});
}

int
lookup(PgConn &pg, RedisConn &redis, const CacheKeys &keys, const std::string &repo, int ntests, int n)
{
	std::vector<std::string> names = test_names(pg, repo, ntests);
	std::vector<double> miss, hit, direct;
	for (int i = 0; i < n; i++) {
		const std::string &t = names[static_cast<std::size_t>(i) % names.size()];
		redis.command({"UNLINK", keys.health(repo, static_cast<std::int64_t>(flakeguard::test_id(t)))});
		double t0 = now_ms();
		Lookup a = lookup_health(pg, &redis, keys, repo, t);
		double t1 = now_ms();
		Lookup b = lookup_health(pg, &redis, keys, repo, t);
		double t2 = now_ms();
		pg.exec("SELECT row_to_json(h) FROM flakeguard.test_health h WHERE h.repo = $1 AND h.full_name = $2",
				{repo, t});
		double t3 = now_ms();
		if (a.hit || !b.hit) {
			std::fprintf(stderr, "lookup %s: expected a miss then a hit\n", t.c_str());
			return 1;
		}
		miss.push_back(t1 - t0);
		hit.push_back(t2 - t1);
		direct.push_back(t3 - t2);
	}
	report("lookup_miss_ms", miss);
	report("lookup_hit_ms", hit);
	report("test_health_query_ms", direct);
	return 0;
}

int
invalidation(PgConn &pg, RedisConn &redis, const CacheKeys &keys, const std::string &repo, int n)
{
	std::vector<std::string> names = test_names(pg, repo, 1000000);
	std::vector<double> gone;
	int timeouts = 0;
	for (int i = 0; i < n; i++) {
		const std::string &t = names[static_cast<std::size_t>(i) % names.size()];
		const std::string key = keys.health(repo, static_cast<std::int64_t>(flakeguard::test_id(t)));
		lookup_health(pg, &redis, keys, repo, t);
		commit_change(pg, repo, {t});
		double t0 = now_ms(); /* the COMMIT has returned */
		bool seen = false;
		while (now_ms() - t0 < 5000) {
			RedisReply r = redis.command({"EXISTS", key});
			if (r->integer == 0) {
				seen = true;
				break;
			}
			std::this_thread::sleep_for(std::chrono::microseconds(100));
		}
		if (seen)
			gone.push_back(now_ms() - t0);
		else
			timeouts++;
	}
	report("invalidation_ms", gone);
	std::printf("invalidation_timeouts %d\n", timeouts);
	return 0;
}

int
mix(PgConn &pg, RedisConn &redis, const CacheKeys &keys, const std::string &repo, int ntests, int lookups,
	int write_every, int changed)
{
	std::vector<std::string> names = test_names(pg, repo, ntests);
	std::mt19937_64 rng(42);
	/* Zipf-like popularity: weight 1/(rank+1) */
	std::vector<double> w;
	for (std::size_t i = 0; i < names.size(); i++)
		w.push_back(1.0 / static_cast<double>(i + 1));
	std::discrete_distribution<std::size_t> pick(w.begin(), w.end());
	std::uniform_int_distribution<std::size_t> any(0, names.size() - 1);
	long hits = 0, misses = 0, writes = 0;
	std::vector<double> ms;
	/* warm up (not counted): the steady state is what is measured */
	for (int i = 0; i < lookups / 4; i++)
		lookup_health(pg, &redis, keys, repo, names[pick(rng)]);
	double t_start = now_ms();
	for (int i = 0; i < lookups; i++) {
		if (i > 0 && i % write_every == 0) {
			std::vector<std::string> change;
			for (int k = 0; k < changed; k++)
				change.push_back(names[any(rng)]);
			std::sort(change.begin(), change.end());
			change.erase(std::unique(change.begin(), change.end()), change.end());
			commit_change(pg, repo, change);
			writes++;
		}
		double t0 = now_ms();
		Lookup l = lookup_health(pg, &redis, keys, repo, names[pick(rng)]);
		ms.push_back(now_ms() - t0);
		(l.hit ? hits : misses)++;
	}
	double seconds = (now_ms() - t_start) / 1000.0;
	std::printf(
		"mix_lookups %d\nmix_writes %ld\nmix_hits %ld\nmix_misses %ld\nmix_hit_rate %.4f\nmix_lookups_per_s %.0f\n",
		lookups, writes, hits, misses, static_cast<double>(hits) / static_cast<double>(hits + misses),
		static_cast<double>(lookups) / seconds);
	report("mix_lookup_ms", ms);
	return 0;
}

} // namespace

int
main(int argc, char **argv)
{
	if (argc < 3) {
		std::fprintf(
			stderr,
			"usage: %s lookup REPO TESTS N | invalidation REPO N | mix REPO TESTS LOOKUPS WRITE_EVERY CHANGED\n",
			argv[0]);
		return 2;
	}
	const char *dsn = std::getenv("FLAKEGUARD_PG");
	const char *url = std::getenv("FLAKEGUARD_REDIS");
	PgConn pg(dsn != nullptr ? dsn : "", 60000);
	RedisConn redis(parse_redis_url(url != nullptr ? url : "redis://127.0.0.1:6379"), 5000);
	if (!pg.connect() || !redis.connect()) {
		std::fprintf(stderr, "cache_bench: cannot connect: %s %s\n", pg.error().c_str(), redis.error().c_str());
		return 1;
	}
	CacheKeys keys{"fg:"};
	std::string cmd = argv[1], repo = argv[2];
	try {
		if (cmd == "lookup" && argc == 5)
			return lookup(pg, redis, keys, repo, std::atoi(argv[3]), std::atoi(argv[4]));
		if (cmd == "invalidation" && argc == 4)
			return invalidation(pg, redis, keys, repo, std::atoi(argv[3]));
		if (cmd == "mix" && argc == 7)
			return mix(pg, redis, keys, repo, std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]),
					   std::atoi(argv[6]));
	} catch (const std::exception &e) {
		std::fprintf(stderr, "cache_bench: %s\n", e.what());
		return 1;
	}
	std::fprintf(stderr, "cache_bench: bad arguments\n");
	return 2;
}
