/*
 * main.cpp
 *	  flakeguard-sidecar: run (the daemon), push (CI's upload step), gate
 *	  (CI's gate on known-flaky failures), lookup (the cache's reference
 *	  reader).  Usage in usage_text below.
 */
#include "cache.hpp"
#include "config.hpp"
#include "gate.hpp"
#include "ingest_stream.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "settings.hpp"
#include "stop.hpp"

#include "flakeguard/core/error.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sstream>
#include <set>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace flakeguard::sidecar;

namespace {

const char usage_text[] = R"(flakeguard-sidecar: the Redis cache, stream ingestion and CI gate of FlakeGuard

Usage:
  flakeguard-sidecar run [OPTIONS]
      The daemon: keeps the Redis cache at the database's versions (LISTEN
      flakeguard) and ingests the reports pushed to the stream in batches.
  flakeguard-sidecar push --repo R --run-id ID [--attempt N] [--job J]
                          [--commit SHA] [--branch B] [--created-at TS]
                          [--wait [--wait-timeout S]] FILE...
      Adds the reports FILE... (at most 1000) to the stream as one upload
      (what a CI step calls); prints the entry id.  Each report is parsed
      first, and a report that is not JUnit fails the push (--no-check skips
      this).  With --wait, waits until the daemon has committed the upload or
      rejected it, and prints "ingested ID" (stdout) or "rejected ID: SQLSTATE
      error" (stderr) instead; the exit status tells which (below).
  flakeguard-sidecar gate --repo R --run-id ID [--attempt N] [--job J]
                          [--commit SHA] [--branch B] [--created-at TS]
                          [--timeout S] [--fail-open] FILE...
      The CI gate, after a job's tests: stores the reports FILE... as one
      upload (flakeguard.gate(), one statement, straight to PostgreSQL) and
      judges each failing test: forgiven when it is quarantined, or was flaky
      in this job's configuration before this upload (and is not broken
      there), refused otherwise.  A later FILE is a rerun of the earlier ones.
      Prints a line per failure and a summary; exits 0 when every failure is
      forgiven.
  flakeguard-sidecar lookup [-v] REPO TEST
      Prints the test_health row of TEST (its full name) as JSON, from the
      cache or else from PostgreSQL, filling the cache.  -v says which.
  flakeguard-sidecar version     (or --version, after any command)
      Prints "flakeguard-sidecar X.Y.Z", the version of the extension it
      belongs to.

Every command:
  --config FILE         read settings from FILE: FLAKEGUARD_*=VALUE lines, the
                        names of the variables below, as in an /etc/default
                        file (sidecar/README.md)   [FLAKEGUARD_CONFIG]
                        Precedence: options, then the environment, then FILE.

Connections (every command):
  --pg DSN              libpq connection string        [FLAKEGUARD_PG; libpq's PG* variables]
  --redis URL           redis://[:password@]host[:port][/db] or unix:///path
                                                       [FLAKEGUARD_REDIS; redis://127.0.0.1:6379]
  --prefix P            Redis key prefix, without { or } [FLAKEGUARD_PREFIX; fg:]
                        (keys: P{REPO}:v, P{REPO}:health:ID, ...; REPO
                        percent-encoded, see sidecar/README.md)
  --stream NAME         ingest stream; dead letters go to NAME:dead
                                                       [FLAKEGUARD_STREAM; fg:ingest]
  --max-report-size B   bytes of reports per upload    [FLAKEGUARD_MAX_REPORT_SIZE; 104857600]

push:
  --wait                wait for the upload's outcome (its entry asks the daemon
                        for a reply: Redis list STREAM:reply:ID)
  --wait-timeout S      give up waiting after S seconds (implies --wait) [300]

run:
  --refresh             write the changed tests' values back, not only unlink them
                                                       [FLAKEGUARD_REFRESH=1]
  --create-repositories ingest for repositories not in the database yet (else
                        such reports are dead letters) [FLAKEGUARD_CREATE_REPOSITORIES=1]
  --batch-size N        executions per batch           [FLAKEGUARD_BATCH_SIZE; 1000]
  --max-batch-bytes B   bytes of entries (reports and their rows) a batch
                        holds before it is committed   [FLAKEGUARD_MAX_BATCH_BYTES; 67108864]
                        Entries are read one at a time, in chunks; one whose
                        reports exceed --max-report-size is dead-lettered
                        unread.  Peak memory (RSS) is at most
                          RSS at start + B + 3 x --max-report-size + 16 MiB
                        whatever the entries hold (sidecar/README.md).
  --batch-ms MS         longest wait to fill a batch   [FLAKEGUARD_BATCH_MS; 200]
  --group NAME          consumer group                 [FLAKEGUARD_GROUP; ingesters]
  --consumer NAME       this consumer's name           [FLAKEGUARD_CONSUMER; host:pid]
  --claim-idle-ms MS    claim entries pending this long at another consumer
                                                       [FLAKEGUARD_CLAIM_IDLE_MS; 60000]
  --max-deliveries N    dead-letter an entry delivered N times [FLAKEGUARD_MAX_DELIVERIES; 5]
  --reconcile-ms MS     compare every version with Redis this often
                                                       [FLAKEGUARD_RECONCILE_MS; 30000]
  --metrics-port P      serve /metrics and /healthz on P (0: off) [FLAKEGUARD_METRICS_PORT; 0]
  --metrics-address A   ... on address A               [FLAKEGUARD_METRICS_ADDRESS; 127.0.0.1]
  --log-file PATH       log there instead of stderr; SIGHUP reopens it
                                                       [FLAKEGUARD_LOG_FILE]

gate:
  --timeout S           give up on the database after S seconds (connecting,
                        then the statement) [30]
  --fail-open           when the database gives no verdict (unreachable, timed
                        out, shutting down), exit 0 and say so; by default
                        such a gate fails (exit 4) when the reports hold a
                        failure.  Reports without failures always pass.

Signals (run): SIGTERM or SIGINT commits the batch in hand and exits 0 (a second
one exits at once); SIGHUP reopens the log file and reads --config again: the
batch settings, --refresh, --claim-idle-ms, --max-deliveries, --reconcile-ms
and --log-file change at once, the others need a restart (logged).
Under systemd (Type=notify) run says READY=1 once connected to PostgreSQL
(LISTEN) and Redis and serving metrics; it logs to the journal with priorities.
Exit status: 0 done, 1 failed, 2 bad usage; push --wait also:
  0 the upload was ingested (committed; also when it was ingested before),
  3 the upload was rejected (dead-lettered, recorded in flakeguard.rejected_report),
  4 no outcome known: --wait-timeout passed (no daemon running, or the entry
    was trimmed), SIGINT or SIGTERM, or Redis failed while waiting; the entry
    stays in the stream and may still be ingested.
  1 still means nothing was added (the push itself failed).
gate: 0 no failure, or every failure forgiven (also: no verdict with --fail-open),
  1 a failure was refused, 3 the database rejected the upload (a report that
  is not JUnit, invalid metadata, no write access), 4 no verdict (the database
  unreachable or timed out) while the reports hold a failure.
)";

struct UsageError : std::runtime_error {
	using std::runtime_error::runtime_error;
};

void
print_version()
{
	std::printf("flakeguard-sidecar %s\n", FG_VERSION);
}

long long
number(const std::string &name, const std::string &text, long long low, long long high)
{
	char *end = nullptr;
	errno = 0;
	long long v = std::strtoll(text.c_str(), &end, 10);
	if (text.empty() || *end != '\0' || errno != 0 || v < low || v > high)
		throw UsageError("invalid value \"" + text + "\" for " + name + " (an integer from " + std::to_string(low) +
						 " to " + std::to_string(high) + ")");
	return v;
}

struct Option {
	const char *name;
	const char *env; /* nullptr: no variable */
	bool takes_value;
	std::function<void(const std::string &)> set;
};

/* Every FLAKEGUARD_* name a config file may set (those of run's options, a superset of the others'). */
std::set<std::string> setting_names();

/* The --config file named on the command line, else by FLAKEGUARD_CONFIG; "" when none. */
std::string
config_path(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		const std::string arg = argv[i];
		if (arg == "--")
			break;
		if (arg == "--config") {
			if (i + 1 >= argc)
				throw UsageError("option --config needs a value");
			return argv[i + 1];
		}
		if (arg.rfind("--config=", 0) == 0)
			return arg.substr(9);
	}
	const char *v = std::getenv("FLAKEGUARD_CONFIG");
	return v != nullptr ? v : "";
}

/* Sets o from a variable's or a config file's value: "" is unset, a flag's "0" is off. */
void
apply_setting(const Option &o, const std::string &value)
{
	if (!value.empty())
		o.set(value);
}

/*
 * Applies the config file (--config or FLAKEGUARD_CONFIG; throws
 * SettingsError), then environment variables, then the command line; returns
 * the arguments that are not options.  A flag's setter gets "0" (off) or
 * anything else (on).
 */
std::vector<std::string>
parse(const std::vector<Option> &options, int argc, char **argv, bool *verbose = nullptr)
{
	for (int i = 0; i < argc && std::strcmp(argv[i], "--") != 0; i++)
		if (std::strcmp(argv[i], "--version") == 0) {
			print_version();
			std::exit(0);
		}
	if (const std::string path = config_path(argc, argv); !path.empty())
		for (const auto &[key, value] : read_settings(path, setting_names()))
			for (const auto &o : options)
				if (o.env != nullptr && key == o.env)
					apply_setting(o, value);
	for (const auto &o : options)
		if (o.env != nullptr)
			if (const char *v = std::getenv(o.env); v != nullptr)
				apply_setting(o, v);
	std::vector<std::string> rest;
	for (int i = 0; i < argc; i++) {
		std::string arg = argv[i];
		if (arg == "-h" || arg == "--help") {
			std::fputs(usage_text, stdout);
			std::exit(0);
		}
		if (arg == "--config") {
			i++; /* read above */
			continue;
		}
		if (arg.rfind("--config=", 0) == 0)
			continue;
		if (verbose != nullptr && arg == "-v") {
			*verbose = true;
			continue;
		}
		if (arg == "--") {
			for (i++; i < argc; i++)
				rest.emplace_back(argv[i]);
			break;
		}
		if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
			rest.push_back(arg);
			continue;
		}
		std::string value;
		bool has_value = false;
		if (auto eq = arg.find('='); eq != std::string::npos) {
			value = arg.substr(eq + 1);
			arg.resize(eq);
			has_value = true;
		}
		const Option *o = nullptr;
		for (const auto &candidate : options)
			if (arg == candidate.name)
				o = &candidate;
		if (o == nullptr)
			throw UsageError("unknown option \"" + arg + "\"");
		if (o->takes_value && !has_value) {
			if (i + 1 >= argc)
				throw UsageError("option " + arg + " needs a value");
			value = argv[++i];
		} else if (!o->takes_value && has_value) {
			throw UsageError("option " + arg + " takes no value");
		}
		o->set(o->takes_value ? value : "1");
	}
	return rest;
}

std::vector<Option>
connection_options(Config &c)
{
	return {
		{"--pg", "FLAKEGUARD_PG", true, [&c](const std::string &v) { c.pg = v; }},
		{"--redis", "FLAKEGUARD_REDIS", true, [&c](const std::string &v) { c.redis_url = v; }},
		{"--prefix", "FLAKEGUARD_PREFIX", true,
		 [&c](const std::string &v) {
			 /* '{' or '}' would change the keys' Redis Cluster hash tag */
			 if (v.find_first_of("{}") != std::string::npos)
				 throw UsageError("--prefix must not contain '{' or '}'");
			 c.prefix = v;
		 }},
		{"--stream", "FLAKEGUARD_STREAM", true,
		 [&c](const std::string &v) {
			 if (v.empty())
				 throw UsageError("--stream must not be empty");
			 c.stream = v;
		 }},
		{"--max-report-size", "FLAKEGUARD_MAX_REPORT_SIZE", true,
		 [&c](const std::string &v) {
			 c.max_report_size = static_cast<std::size_t>(number("--max-report-size", v, 1, 1LL << 30));
		 }},
	};
}

void
finish_config(Config &c)
{
	try {
		c.redis = parse_redis_url(c.redis_url);
	} catch (const std::invalid_argument &e) {
		throw UsageError(e.what());
	}
	if (c.consumer.empty()) {
		char host[256] = "localhost";
		gethostname(host, sizeof(host) - 1);
		c.consumer = std::string(host) + ":" + std::to_string(getpid());
	}
}

std::vector<Option>
run_options(Config &c)
{
	std::vector<Option> options = connection_options(c);
	std::vector<Option> more = {
		{"--refresh", "FLAKEGUARD_REFRESH", false, [&c](const std::string &v) { c.refresh = v != "0"; }},
		{"--create-repositories", "FLAKEGUARD_CREATE_REPOSITORIES", false,
		 [&c](const std::string &v) { c.create_repositories = v != "0"; }},
		{"--batch-size", "FLAKEGUARD_BATCH_SIZE", true,
		 [&c](const std::string &v) {
			 c.batch_size = static_cast<std::size_t>(number("--batch-size", v, 1, 1000000));
		 }},
		{"--max-batch-bytes", "FLAKEGUARD_MAX_BATCH_BYTES", true,
		 [&c](const std::string &v) {
			 c.max_batch_bytes = static_cast<std::size_t>(number("--max-batch-bytes", v, 1 << 20, 1LL << 34));
		 }},
		{"--batch-ms", "FLAKEGUARD_BATCH_MS", true,
		 [&c](const std::string &v) { c.batch_ms = number("--batch-ms", v, 1, 600000); }},
		{"--group", "FLAKEGUARD_GROUP", true, [&c](const std::string &v) { c.group = v; }},
		{"--consumer", "FLAKEGUARD_CONSUMER", true, [&c](const std::string &v) { c.consumer = v; }},
		{"--claim-idle-ms", "FLAKEGUARD_CLAIM_IDLE_MS", true,
		 [&c](const std::string &v) { c.claim_idle_ms = number("--claim-idle-ms", v, 100, 86400000); }},
		{"--max-deliveries", "FLAKEGUARD_MAX_DELIVERIES", true,
		 [&c](const std::string &v) { c.max_deliveries = static_cast<int>(number("--max-deliveries", v, 1, 1000)); }},
		{"--reconcile-ms", "FLAKEGUARD_RECONCILE_MS", true,
		 [&c](const std::string &v) { c.reconcile_ms = number("--reconcile-ms", v, 100, 86400000); }},
		{"--metrics-port", "FLAKEGUARD_METRICS_PORT", true,
		 [&c](const std::string &v) { c.metrics_port = static_cast<int>(number("--metrics-port", v, 0, 65535)); }},
		{"--metrics-address", "FLAKEGUARD_METRICS_ADDRESS", true,
		 [&c](const std::string &v) { c.metrics_address = v; }},
		{"--log-file", "FLAKEGUARD_LOG_FILE", true, [&c](const std::string &v) { c.log_file = v; }},
	};
	options.insert(options.end(), more.begin(), more.end());
	return options;
}

std::set<std::string>
setting_names()
{
	Config c;
	std::set<std::string> names;
	for (const auto &o : run_options(c))
		if (o.env != nullptr)
			names.insert(o.env);
	return names;
}

/* run's settings from its arguments, the environment and the config file (read again on SIGHUP). */
Config
run_config(int argc, char **argv)
{
	Config c;
	std::vector<std::string> rest = parse(run_options(c), argc, argv);
	if (!rest.empty())
		throw UsageError("run takes no arguments (got \"" + rest[0] + "\")");
	finish_config(c);
	return c;
}

/*
 * SIGHUP: reads the settings again and applies those the loops read as they
 * go; logs the others as needing a restart.
 */
void
reload(Config &c, int argc, char **argv)
{
	Config fresh;
	try {
		fresh = run_config(argc, argv);
	} catch (const std::exception &e) {
		log(Level::error, "SIGHUP: settings not reloaded, keeping the current ones: %s", e.what());
		return;
	}
	int changed = 0;
	auto live = [&](const char *name, auto &current, const auto &next) {
		if (current.get() == next.get())
			return;
		log(Level::info, "SIGHUP: %s changed from %s to %s", name, std::to_string(current.get()).c_str(),
			std::to_string(next.get()).c_str());
		current = next;
		changed++;
	};
	live("batch size", c.batch_size, fresh.batch_size);
	live("batch ms", c.batch_ms, fresh.batch_ms);
	live("max batch bytes", c.max_batch_bytes, fresh.max_batch_bytes);
	live("refresh", c.refresh, fresh.refresh);
	live("reconcile ms", c.reconcile_ms, fresh.reconcile_ms);
	live("claim idle ms", c.claim_idle_ms, fresh.claim_idle_ms);
	live("max deliveries", c.max_deliveries, fresh.max_deliveries);
	auto restart = [&](const char *name, bool same) {
		if (!same)
			log(Level::warning, "SIGHUP: the new %s needs a restart; keeping the current one", name);
	};
	restart("PostgreSQL connection (FLAKEGUARD_PG)", fresh.pg == c.pg);
	restart("Redis URL (FLAKEGUARD_REDIS)", fresh.redis_url == c.redis_url);
	restart("key prefix (FLAKEGUARD_PREFIX)", fresh.prefix == c.prefix);
	restart("stream (FLAKEGUARD_STREAM)", fresh.stream == c.stream);
	restart("group (FLAKEGUARD_GROUP)", fresh.group == c.group);
	restart("consumer (FLAKEGUARD_CONSUMER)", fresh.consumer == c.consumer);
	restart("report size limit (FLAKEGUARD_MAX_REPORT_SIZE)", fresh.max_report_size == c.max_report_size);
	restart("create-repositories setting (FLAKEGUARD_CREATE_REPOSITORIES)",
			fresh.create_repositories == c.create_repositories);
	restart("metrics port (FLAKEGUARD_METRICS_PORT)", fresh.metrics_port == c.metrics_port);
	restart("metrics address (FLAKEGUARD_METRICS_ADDRESS)", fresh.metrics_address == c.metrics_address);
	/* the log file: reopened (logrotate), or another one; logged after, so the line lands in the new file */
	const bool moved = fresh.log_file != c.log_file;
	if (log_open(fresh.log_file)) {
		if (moved)
			log(Level::info, "SIGHUP: logging to %s", fresh.log_file.empty() ? "stderr" : fresh.log_file.c_str());
		else if (!c.log_file.empty())
			log(Level::info, "SIGHUP: reopened the log file");
		c.log_file = fresh.log_file;
	} else {
		log(Level::error, "SIGHUP: could not open log file \"%s\": %s", fresh.log_file.c_str(), std::strerror(errno));
		if (moved)
			log_open(c.log_file);
	}
	log(Level::info, "SIGHUP: settings reloaded (%d changed)", changed);
}

/* A message to systemd (nothing without NOTIFY_SOCKET), one assignment a line, each ended by a newline. */
void
notify(const std::string &message)
{
	sd_notify(0, (message + "\n").c_str());
}

int
cmd_run(int argc, char **argv)
{
	Config c = run_config(argc, argv);

	if (!log_open(c.log_file)) {
		std::fprintf(stderr, "flakeguard-sidecar: could not open log file \"%s\": %s\n", c.log_file.c_str(),
					 std::strerror(errno));
		return 1;
	}

	/* Signals are read from a signalfd by this thread only; no handler ever runs. */
	sigset_t signals;
	sigemptyset(&signals);
	for (int s : {SIGTERM, SIGINT, SIGHUP})
		sigaddset(&signals, s);
	pthread_sigmask(SIG_BLOCK, &signals, nullptr);
	std::signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &signals, SFD_CLOEXEC);
	if (sfd < 0) {
		log(Level::error, "signalfd failed: %s", std::strerror(errno));
		return 1;
	}

	/*
	 * Large blocks (reports, rows) straight from mmap, returned to the system
	 * when freed: glibc's adaptive threshold would otherwise move blocks up to
	 * 32 MiB into the heap, where freed memory stays in RSS.
	 */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);

	Metrics metrics;
	MetricsServer server(metrics);
	if (c.metrics_port != 0 && !server.listen(c.metrics_address, c.metrics_port)) {
		log(Level::error, "could not listen on %s:%d for metrics: %s", c.metrics_address.c_str(), c.metrics_port,
			server.error().c_str());
		return 1;
	}
	if (c.batch_ms >= c.claim_idle_ms)
		log(Level::warning,
			"--batch-ms (%lld) is not below --claim-idle-ms (%lld): other consumers may claim entries "
			"this one still holds, and ingest them twice",
			static_cast<long long>(c.batch_ms), static_cast<long long>(c.claim_idle_ms));
	log(Level::info, "starting: consumer \"%s\"%s", c.consumer.c_str(),
		c.metrics_port != 0 ? (", metrics on " + c.metrics_address + ":" + std::to_string(c.metrics_port)).c_str()
							: "");

	CacheLoop cache(c, metrics);
	IngestLoop ingest(c, metrics);
	std::atomic<int> done{0};
	std::atomic<bool> failed{false};
	/* a loop that throws stops the daemon (status 1), so its supervisor starts it again */
	auto worker = [&](const char *name, auto &loop) {
		return std::thread([&, name] {
			try {
				loop.run();
			} catch (const std::exception &e) {
				log(Level::error, "%s loop failed: %s", name, e.what());
				failed = true;
				stop_requested = true;
			}
			done++;
		});
	};
	std::thread cache_thread = worker("cache", cache);
	std::thread ingest_thread = worker("ingest", ingest);

	/*
	 * Signals, until both loops are done (they drain after a stop request),
	 * and systemd's notifications (sd_notify: nothing without NOTIFY_SOCKET);
	 * probes are the server's threads'.
	 */
	std::int64_t stop_signal_ms = 0;
	std::string status; /* the last STATUS= sent */
	while (done.load() < 2) {
		const bool connected = metrics.connected();
		if (!stop_requested.load()) {
			const std::string now = connected       ? "STATUS=connected to PostgreSQL and Redis, consuming " + c.stream
									: metrics.ready ? "STATUS=reconnecting: " + metrics.down()
													: "STATUS=connecting: " + metrics.down();
			if (connected && !metrics.ready) {
				/* connected: LISTEN issued, the group exists, metrics served (listen() came first) */
				log(Level::info, "ready: connected to PostgreSQL and Redis");
				notify("READY=1\n" + now);
				metrics.ready = true;
			} else if (now != status) {
				notify(now);
			}
			status = now;
		}
		struct pollfd fds[1] = {{sfd, POLLIN, 0}};
		int n = poll(fds, 1, 100);
		struct signalfd_siginfo info;
		if (n > 0 && (fds[0].revents & POLLIN) &&
			read(sfd, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
			if (info.ssi_signo == SIGHUP) {
				/* Type=notify-reload (systemd 253) wants the reload's start on the monotonic clock */
				struct timespec ts;
				clock_gettime(CLOCK_MONOTONIC, &ts);
				sd_notifyf(0, "RELOADING=1\nSTATUS=reloading the settings\nMONOTONIC_USEC=%llu\n",
						   static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
							   static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL);
				reload(c, argc, argv);
				notify("READY=1\n" + status);
			} else if (stop_signal_ms == 0) {
				log(Level::info, "%s: committing the batch in hand, then stopping",
					info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
				notify("STOPPING=1\nSTATUS=committing the batch in hand, then stopping");
				stop_signal_ms = monotonic_ms();
				stop_requested = true;
			} else if (monotonic_ms() - stop_signal_ms >= 1000) {
				/* a second one, not a repeat of the first (Ctrl-C sends SIGINT to the group) */
				log(Level::info, "second stop signal: exiting at once");
				_exit(1);
			}
		}
	}
	if (stop_signal_ms == 0)
		notify("STOPPING=1\nSTATUS=stopping: a loop failed");
	cache_thread.join();
	ingest_thread.join();
	server.stop();
	log(Level::info, "stopped");
	return failed ? 1 : 0;
}

bool
read_file(const std::string &path, std::string &out, std::size_t limit, std::string &error)
{
	std::ifstream in(path, std::ios::binary);
	if (!in) {
		error = "could not open \"" + path + "\": " + std::strerror(errno);
		return false;
	}
	in.seekg(0, std::ios::end);
	std::streamoff size = in.tellg();
	if (size < 0) {
		error = "could not read \"" + path + "\"";
		return false;
	}
	if (static_cast<std::uint64_t>(size) > limit) {
		error = "\"" + path + "\" is larger than --max-report-size (" + std::to_string(limit) + " bytes)";
		return false;
	}
	in.seekg(0);
	out.assign(static_cast<std::size_t>(size), '\0');
	if (!in.read(out.data(), size)) {
		error = "could not read \"" + path + "\"";
		return false;
	}
	return true;
}

/* The options that describe an upload (push and gate). */
std::vector<Option>
upload_options(Upload &u)
{
	return {
		{"--repo", nullptr, true, [&u](const std::string &v) { u.repo = v; }},
		{"--run-id", nullptr, true, [&u](const std::string &v) { u.run_id = v; }},
		{"--attempt", nullptr, true,
		 [&u](const std::string &v) { u.attempt = static_cast<std::int32_t>(number("--attempt", v, 1, 1000000)); }},
		{"--job", nullptr, true, [&u](const std::string &v) { u.job = v; }},
		{"--commit", nullptr, true, [&u](const std::string &v) { u.commit_sha = v; }},
		{"--branch", nullptr, true, [&u](const std::string &v) { u.branch = v; }},
		{"--created-at", nullptr, true,
		 [&u](const std::string &v) {
			 if (!valid_timestamp(v))
				 throw UsageError("invalid --created-at \"" + v + "\" (ISO 8601 with a time zone)");
			 u.created_at = v;
		 }},
	};
}

void
check_upload_arguments(const char *command, const Upload &u, const std::vector<std::string> &files)
{
	const std::string cmd(command);
	if (u.repo.empty())
		throw UsageError(cmd + " needs --repo");
	if (u.run_id.empty())
		throw UsageError(cmd + " needs --run-id (the CI's run identifier, for example $GITHUB_RUN_ID)");
	if (files.empty())
		throw UsageError(cmd + " needs at least one report file");
	if (files.size() > max_upload_files)
		throw UsageError(cmd + " takes at most " + std::to_string(max_upload_files) + " report files (one upload)");
}

/* Reads the report files into u (at most --max-report-size in all); the exit status. */
int
read_reports(const char *command, const Config &c, Upload &u, const std::vector<std::string> &files)
{
	std::size_t total = 0;
	for (const auto &path : files) {
		std::string bytes, error;
		if (!read_file(path, bytes, c.max_report_size - std::min(total, c.max_report_size), error)) {
			std::fprintf(stderr, "flakeguard-sidecar %s: %s\n", command, error.c_str());
			return 1;
		}
		total += bytes.size();
		u.files.emplace_back(path, std::move(bytes));
	}
	return 0;
}

/* An upload command's arguments parsed and checked, its reports read into u; the exit status (0: go on). */
int
upload_command(const char *command, Config &c, Upload &u, const std::vector<Option> &options, int argc, char **argv)
{
	std::vector<std::string> files = parse(options, argc, argv);
	check_upload_arguments(command, u, files);
	finish_config(c);
	if (u.created_at.empty())
		u.created_at = timestamp_now();
	return read_reports(command, c, u, files);
}

/* push --wait's exit statuses (besides 0, 1 and 2) */
constexpr int exit_rejected = 3;
constexpr int exit_no_outcome = 4;

/* The outcome of entry id, printed; the exit status.  SIGINT and SIGTERM end the wait. */
int
wait_for_outcome(RedisConn &redis, const Config &c, const std::string &id, std::int64_t timeout_s)
{
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	/* read from a signalfd: the wait polls it beside the Redis socket */
	sigprocmask(SIG_BLOCK, &signals, nullptr);
	const int sfd = signalfd(-1, &signals, SFD_CLOEXEC);
	if (sfd < 0)
		sigprocmask(SIG_UNBLOCK, &signals, nullptr); /* then a signal ends push as usual */
	Waited w = wait_outcome(redis, c, id, timeout_s * 1000, sfd);
	if (sfd >= 0)
		close(sfd);
	switch (w.end) {
	case Waited::End::outcome: {
		const Outcome &o = w.outcome;
		if (o.ingested) {
			std::printf("ingested %s\n", id.c_str());
			return 0;
		}
		/* one line, whatever the messages hold */
		auto line = [](std::string s) {
			for (char &ch : s)
				if (ch == '\n' || ch == '\r')
					ch = ' ';
			return s;
		};
		const Rejection &r = o.rejection;
		std::fprintf(stderr, "rejected %s: %s %s%s%s", id.c_str(), r.sqlstate.c_str(), line(r.error).c_str(),
					 r.detail.empty() ? "" : ": ", line(r.detail).c_str());
		if (o.rejected_id)
			std::fprintf(stderr, " (rejected_id %lld)", static_cast<long long>(*o.rejected_id));
		std::fputc('\n', stderr);
		return exit_rejected;
	}
	case Waited::End::timed_out:
		std::fprintf(
			stderr, "flakeguard-sidecar push: no outcome for entry %s within %lld s (is the daemon running?)%s%s\n",
			id.c_str(), static_cast<long long>(timeout_s), w.error.empty() ? "" : "; last error: ", w.error.c_str());
		break;
	case Waited::End::interrupted:
		std::fprintf(stderr, "flakeguard-sidecar push: interrupted while waiting for entry %s\n", id.c_str());
		break;
	case Waited::End::failed:
		std::fprintf(stderr, "flakeguard-sidecar push: waiting for entry %s failed: %s\n", id.c_str(), w.error.c_str());
		break;
	}
	return exit_no_outcome;
}

int
cmd_push(int argc, char **argv)
{
	Config c;
	Upload u;
	bool check = true;
	std::int64_t wait_timeout_s = 300;
	std::vector<Option> options = connection_options(c);
	std::vector<Option> more = upload_options(u);
	std::vector<Option> push_only = {
		{"--no-check", nullptr, false, [&check](const std::string &) { check = false; }},
		{"--wait", nullptr, false, [&u](const std::string &) { u.reply = true; }},
		{"--wait-timeout", nullptr, true,
		 [&u, &wait_timeout_s](const std::string &v) {
			 wait_timeout_s = number("--wait-timeout", v, 1, 86400);
			 u.reply = true;
		 }},
	};
	more.insert(more.end(), push_only.begin(), push_only.end());
	options.insert(options.end(), more.begin(), more.end());
	if (int status = upload_command("push", c, u, options, argc, argv); status != 0)
		return status;
	if (check) {
		flakeguard::JunitLimits limits;
		limits.max_report_size = c.max_report_size;
		for (const auto &f : u.files) {
			try {
				Upload one; /* the reader needs only the file */
				one.files = {f};
				stage_upload(one, limits);
			} catch (const flakeguard::Error &e) {
				std::fprintf(stderr, "flakeguard-sidecar push: \"%s\" cannot be ingested: %s%s%s\n", f.first.c_str(),
							 e.what(), e.detail().empty() ? "" : ": ", e.detail().c_str());
				return 1;
			}
		}
	}
	RedisConn redis(c.redis, c.redis_timeout_ms);
	if (!redis.connect()) {
		std::fprintf(stderr, "flakeguard-sidecar push: could not connect to Redis: %s\n", redis.error().c_str());
		return 1;
	}
	std::string id;
	try {
		id = push_upload(redis, c, u);
	} catch (const RedisError &e) {
		std::fprintf(stderr, "flakeguard-sidecar push: %s\n", e.what());
		return 1;
	}
	if (!u.reply) {
		std::printf("%s\n", id.c_str());
		return 0;
	}
	u.files.clear(); /* the reports' memory, not needed while waiting */
	u.files.shrink_to_fit();
	return wait_for_outcome(redis, c, id, wait_timeout_s);
}

int
cmd_gate(int argc, char **argv)
{
	Config c;
	Upload u;
	std::int64_t timeout_s = 30;
	bool fail_open = false;
	std::vector<Option> options = connection_options(c);
	std::vector<Option> more = upload_options(u);
	more.push_back({"--timeout", nullptr, true,
					[&timeout_s](const std::string &v) { timeout_s = number("--timeout", v, 1, 86400); }});
	more.push_back({"--fail-open", nullptr, false, [&fail_open](const std::string &) { fail_open = true; }});
	options.insert(options.end(), more.begin(), more.end());
	if (int status = upload_command("gate", c, u, options, argc, argv); status != 0)
		return status;
	/* the reports go as one bytea[] value: PostgreSQL's limit for one is 1 GB */
	std::size_t total = 0;
	for (const auto &f : u.files)
		total += f.second.size();
	if (total > gate_max_bytes) {
		std::fprintf(stderr, "flakeguard-sidecar gate: the reports hold %zu bytes; one gate takes at most %zu\n", total,
					 gate_max_bytes);
		return exit_rejected;
	}

	/* the failures as the reports hold them: what a gate without a database would refuse */
	std::vector<std::string> local;
	flakeguard::JunitLimits limits;
	limits.max_report_size = c.max_report_size;
	try {
		local = gate_local_failures(u, limits);
	} catch (const flakeguard::Error &e) {
		std::fprintf(stderr, "flakeguard-sidecar gate: a report cannot be ingested: %s%s%s\n",
					 log_escape(e.what()).c_str(), e.detail().empty() ? "" : ": ", log_escape(e.detail()).c_str());
		return exit_rejected;
	}

	std::string no_verdict;
	std::vector<GateFailure> failures;
	{
		/* connect_timeout, then statement_timeout: both bounded by --timeout */
		PgConn pg(c.pg, static_cast<int>(timeout_s * 1000), static_cast<int>(timeout_s));
		if (!pg.connect()) {
			no_verdict = "could not connect to PostgreSQL: " + log_escape(pg.error());
		} else {
			try {
				failures = gate_upload(pg, u);
			} catch (const PgError &e) {
				if (gate_rejected(e)) {
					std::fprintf(stderr, "flakeguard-sidecar gate: upload rejected: %s %s%s%s%s%s\n", e.sqlstate(),
								 log_escape(e.what()).c_str(), e.detail().empty() ? "" : ": ",
								 log_escape(e.detail()).c_str(), e.hint().empty() ? "" : " (hint: ",
								 e.hint().empty() ? "" : (log_escape(e.hint()) + ")").c_str());
					return exit_rejected;
				}
				no_verdict = std::string(e.sqlstate()) + " " + log_escape(e.what());
			}
		}
	}
	if (!no_verdict.empty()) {
		if (local.empty()) {
			std::printf("gate: passed, no failures (the upload was not stored: %s)\n", no_verdict.c_str());
			return 0;
		}
		for (const auto &name : local)
			std::printf("%s %s: no verdict\n", fail_open ? "forgiven" : "refused ", log_escape(name).c_str());
		if (fail_open) {
			std::printf("gate: passed by --fail-open: %zu failures not judged, no verdict: %s\n", local.size(),
						no_verdict.c_str());
			return 0;
		}
		std::printf("gate: failed: %zu failures not judged, no verdict: %s\n", local.size(), no_verdict.c_str());
		return exit_no_outcome;
	}
	std::size_t refused = 0;
	for (const auto &f : failures) {
		refused += f.forgiven ? 0 : 1;
		std::printf("%s %s (%s): %s\n", f.forgiven ? "forgiven" : "refused ", log_escape(f.full_name).c_str(),
					f.status.c_str(), log_escape(f.reason).c_str());
	}
	if (failures.empty())
		std::printf("gate: passed, no failures\n");
	else if (refused == 0)
		std::printf("gate: passed, %zu failures forgiven\n", failures.size());
	else
		std::printf("gate: failed, %zu of %zu failures refused\n", refused, failures.size());
	return refused == 0 ? 0 : 1;
}

int
cmd_lookup(int argc, char **argv)
{
	Config c;
	bool verbose = false;
	std::vector<std::string> args = parse(connection_options(c), argc, argv, &verbose);
	if (args.size() != 2)
		throw UsageError("lookup takes a repository and a test's full name");
	finish_config(c);
	PgConn pg(c.pg, 10000);
	RedisConn redis(c.redis, c.redis_timeout_ms);
	if (!redis.connect())
		std::fprintf(stderr, "flakeguard-sidecar lookup: Redis unreachable, reading PostgreSQL: %s\n",
					 redis.error().c_str());
	CacheKeys keys{c.prefix};
	try {
		Lookup l = lookup_health(pg, &redis, keys, args[0], args[1]);
		std::printf("%s\n", l.json.c_str());
		if (verbose)
			std::fprintf(stderr, "cache %s\n", l.hit ? "hit" : l.filled ? "miss (filled)" : "miss (not filled)");
	} catch (const PgError &e) {
		std::fprintf(stderr, "flakeguard-sidecar lookup: %s%s%s%s%s\n", log_escape(e.what()).c_str(),
					 e.detail().empty() ? "" : ": ", log_escape(e.detail()).c_str(),
					 e.hint().empty() ? "" : " HINT: ", log_escape(e.hint()).c_str());
		return 1;
	}
	return 0;
}

} // namespace

int
main(int argc, char **argv)
{
	if (argc < 2) {
		std::fputs(usage_text, stderr);
		return 2;
	}
	std::string command = argv[1];
	try {
		if (command == "run")
			return cmd_run(argc - 2, argv + 2);
		if (command == "push")
			return cmd_push(argc - 2, argv + 2);
		if (command == "gate")
			return cmd_gate(argc - 2, argv + 2);
		if (command == "lookup")
			return cmd_lookup(argc - 2, argv + 2);
		if (command == "version" || command == "--version") {
			print_version();
			return 0;
		}
		if (command == "-h" || command == "--help" || command == "help") {
			std::fputs(usage_text, stdout);
			return 0;
		}
		throw UsageError("unknown command \"" + command + "\"");
	} catch (const UsageError &e) {
		std::fprintf(stderr, "flakeguard-sidecar: %s\nTry \"flakeguard-sidecar --help\".\n", e.what());
		return 2;
	} catch (const SettingsError &e) {
		std::fprintf(stderr, "flakeguard-sidecar: %s\n", e.what());
		return 2;
	}
}
