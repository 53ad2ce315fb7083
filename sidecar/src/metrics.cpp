/*
 * metrics.cpp
 *	  /metrics, /healthz and /readyz, served by libmicrohttpd.
 */
#include "metrics.hpp"

#include "stop.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fstream>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sstream>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace flakeguard::sidecar {

constexpr std::array<double, 14> Histogram::bounds;

void
Histogram::observe(double seconds)
{
	std::lock_guard<std::mutex> lock(mutex_);
	for (std::size_t i = 0; i < bounds.size(); i++)
		if (seconds <= bounds[i])
			counts_[i]++;
	count_++;
	sum_ += seconds;
}

namespace {

void append(std::string &out, const char *format, ...) __attribute__((format(printf, 2, 3)));
void
append(std::string &out, const char *format, ...)
{
	char line[512];
	va_list args;
	va_start(args, format);
	std::vsnprintf(line, sizeof(line), format, args);
	va_end(args);
	out += line;
}

void
counter(std::string &out, const char *name, const char *help, std::uint64_t value)
{
	append(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
		   static_cast<unsigned long long>(value));
}

void
gauge(std::string &out, const char *name, const char *help, double value)
{
	append(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, value);
}

} // namespace

void
Histogram::render(std::string &out, const char *name, const char *help) const
{
	std::lock_guard<std::mutex> lock(mutex_);
	append(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (std::size_t i = 0; i < bounds.size(); i++)
		append(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], static_cast<unsigned long long>(counts_[i]));
	append(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
		   static_cast<unsigned long long>(count_), name, sum_, name, static_cast<unsigned long long>(count_));
}

std::string
Metrics::render() const
{
	std::string out;
	counter(out, "flakeguard_sidecar_executions_total", "Test executions ingested from the stream.", executions);
	counter(out, "flakeguard_sidecar_reports_total", "Stream entries (reports) ingested.", reports);
	counter(out, "flakeguard_sidecar_batches_total", "Batches committed.", batches);
	counter(out, "flakeguard_sidecar_batch_failures_total", "Batches rolled back and retried.", batch_failures);
	counter(out, "flakeguard_sidecar_dead_letters_total", "Stream entries moved to the dead-letter stream.",
			dead_letters);
	counter(out, "flakeguard_sidecar_claimed_total", "Pending entries claimed from other consumers.", claimed);
	batch_seconds.render(out, "flakeguard_sidecar_batch_seconds", "Time from a batch's first entry to its COMMIT.");
	gauge(out, "flakeguard_sidecar_last_batch_executions_per_second", "Executions per second of the last batch.",
		  last_batch_executions_per_second);
	counter(out, "flakeguard_sidecar_notifications_total", "NOTIFY flakeguard hints received.", notifications);
	counter(out, "flakeguard_sidecar_invalidations_total", "Repository versions applied to Redis.", invalidations);
	counter(out, "flakeguard_sidecar_full_invalidations_total",
			"Repositories whose cached keys were all unlinked (hint lost, list too long, Redis restarted).",
			full_invalidations);
	counter(out, "flakeguard_sidecar_lost_hints_total", "Version gaps found by reconciling, not by a hint.",
			lost_hints);
	counter(out, "flakeguard_sidecar_reconciles_total", "Reconciliations of Redis with the database's versions.",
			reconciles);
	counter(out, "flakeguard_sidecar_cache_fills_total", "Cache values written fresh (--refresh, quarantine sets).",
			fills);
	counter(out, "flakeguard_sidecar_redis_restarts_total", "Redis restarts seen (run_id changed).", redis_restarts);
	counter(out, "flakeguard_sidecar_unreadable_hints_total",
			"NOTIFY flakeguard payloads that are not hints (each leads to a reconcile, at most one a second).",
			unreadable_hints);
	counter(out, "flakeguard_sidecar_redis_write_refusals_total",
			"Backoff steps after Redis refused a write (an error reply such as OOM at maxmemory).",
			redis_write_refusals);
	invalidation_seconds.render(out, "flakeguard_sidecar_invalidation_seconds",
								"Time from the hint's NOTIFY to its keys unlinked.");
	gauge(out, "flakeguard_sidecar_redis_keyspace_hits", "Redis keyspace_hits (server-wide, from INFO).",
		  static_cast<double>(redis_keyspace_hits));
	gauge(out, "flakeguard_sidecar_redis_keyspace_misses", "Redis keyspace_misses (server-wide, from INFO).",
		  static_cast<double>(redis_keyspace_misses));
	counter(out, "flakeguard_sidecar_pg_reconnects_total", "PostgreSQL connections made again after a loss.",
			pg_reconnects);
	counter(out, "flakeguard_sidecar_redis_reconnects_total", "Redis connections made again after a loss.",
			redis_reconnects);
	append(out, "# HELP flakeguard_sidecar_up Whether a connection is up.\n# TYPE flakeguard_sidecar_up gauge\n");
	append(out, "flakeguard_sidecar_up{loop=\"cache\",server=\"postgresql\"} %d\n", cache_pg_up ? 1 : 0);
	append(out, "flakeguard_sidecar_up{loop=\"cache\",server=\"redis\"} %d\n", cache_redis_up ? 1 : 0);
	append(out, "flakeguard_sidecar_up{loop=\"ingest\",server=\"postgresql\"} %d\n", ingest_pg_up ? 1 : 0);
	append(out, "flakeguard_sidecar_up{loop=\"ingest\",server=\"redis\"} %d\n", ingest_redis_up ? 1 : 0);
	gauge(out, "flakeguard_sidecar_ready", "Whether the daemon is connected and serving (what /readyz says).",
		  ready && connected() && !stop_requested.load() ? 1 : 0);
	/* the stream's backlog: left out until the ingest loop has read it */
	if (const std::int64_t n = stream_undelivered; n >= 0)
		gauge(out, "flakeguard_sidecar_stream_undelivered_entries",
			  "Entries of the ingest stream not yet delivered to the consumer group (XINFO GROUPS lag).",
			  static_cast<double>(n));
	if (const std::int64_t n = stream_pending; n >= 0)
		gauge(out, "flakeguard_sidecar_stream_pending_entries",
			  "Entries delivered to the consumer group and not acknowledged (XPENDING).", static_cast<double>(n));
	if (const std::int64_t n = stream_undelivered, p = stream_pending; n >= 0 && p >= 0)
		gauge(out, "flakeguard_sidecar_stream_backlog_entries", "Entries not ingested yet: undelivered plus pending.",
			  static_cast<double>(n + p));
	if (const std::int64_t at = stream_oldest_unacked_ms; at >= 0) {
		const double age = at == 0 ? 0 : std::max(0.0, wall_seconds() - static_cast<double>(at) / 1000);
		gauge(out, "flakeguard_sidecar_stream_lag_seconds",
			  "Age of the oldest entry not acknowledged yet, from its stream id (0: none).", age);
	}
	append(out,
		   "# HELP flakeguard_sidecar_build_info The sidecar's version.\n"
		   "# TYPE flakeguard_sidecar_build_info gauge\nflakeguard_sidecar_build_info{version=\"%s\"} 1\n",
		   FG_VERSION);
	render_process_metrics(out);
	return out;
}

bool
Metrics::connected() const
{
	return cache_pg_up && cache_redis_up && ingest_pg_up && ingest_redis_up;
}

std::string
Metrics::down() const
{
	std::string out;
	auto add = [&out](bool up, const char *what) {
		if (!up)
			out += (out.empty() ? "" : ", ") + std::string(what);
	};
	add(cache_pg_up, "cache: PostgreSQL");
	add(cache_redis_up, "cache: Redis");
	add(ingest_pg_up, "ingest: PostgreSQL");
	add(ingest_redis_up, "ingest: Redis");
	return out;
}

/* wall-clock seconds at the program's start (static initialisation, before main) */
const double process_started_at = [] {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}();

void
render_process_metrics(std::string &out)
{
	const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
	const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
	std::ifstream stat_file("/proc/self/stat");
	std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
	/* the fields after "(comm)", which may hold spaces and parentheses: field 3 (state) on */
	if (const std::size_t close = stat.rfind(')'); close != std::string::npos && ticks > 0) {
		std::istringstream fields(stat.substr(close + 2));
		std::vector<std::string> f;
		for (std::string field; fields >> field;)
			f.push_back(field);
		/* f[0] is field 3: utime 14, stime 15, starttime 22, vsize 23, rss 24 */
		if (f.size() >= 22) {
			const double utime = std::strtod(f[11].c_str(), nullptr), stime = std::strtod(f[12].c_str(), nullptr);
			append(out,
				   "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
				   "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.17g\n",
				   (utime + stime) / ticks);
			gauge(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
				  std::strtod(f[20].c_str(), nullptr));
			gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
				  std::strtod(f[21].c_str(), nullptr) * page);
		}
	}
	/*
	 * The time the program started, taken when it did: /proc/stat (the boot
	 * time the kernel's start ticks count from) is hidden from the service
	 * (systemd's ProcSubset=pid).
	 */
	gauge(out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
		  process_started_at);
	if (DIR *d = opendir("/proc/self/fd"); d != nullptr) {
		long n = 0;
		while (const struct dirent *e = readdir(d))
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		gauge(out, "process_open_fds", "Number of open file descriptors.", static_cast<double>(n - 1)); /* not d's */
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		gauge(out, "process_max_fds", "Maximum number of open file descriptors.", static_cast<double>(rl.rlim_cur));
}

bool
Metrics::alive(std::int64_t now_ms, std::int64_t stale_ms) const
{
	for (const auto *beat : {&cache_heartbeat_ms, &ingest_heartbeat_ms}) {
		std::int64_t at = beat->load();
		if (at != 0 && now_ms - at > stale_ms)
			return false;
	}
	return true;
}

namespace {

enum MHD_Result
handle(void *cls, struct MHD_Connection *connection, const char *url, const char *method, const char *, const char *,
	   size_t *upload_data_size, void **request)
{
	const auto *metrics = static_cast<const Metrics *>(cls);
	/*
	 * GET and HEAD are answered on the second call, once the headers are
	 * complete: libmicrohttpd closes the connection after a response queued
	 * on the first call, and keeps it (HTTP/1.1) otherwise.  Other methods
	 * are refused at once, their body neither wanted nor read.
	 */
	static int seen;
	const bool bodiless = std::strcmp(method, "GET") == 0 || std::strcmp(method, "HEAD") == 0;
	if (*request == nullptr && bodiless) {
		*request = &seen;
		return MHD_YES;
	}
	if (upload_data_size != nullptr && *upload_data_size != 0)
		*upload_data_size = 0;
	std::string body, type;
	const int status = MetricsServer::answer(*metrics, method, url, body, type);
	struct MHD_Response *response =
		MHD_create_response_from_buffer(body.size(), const_cast<char *>(body.data()), MHD_RESPMEM_MUST_COPY);
	if (response == nullptr)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type.c_str());
	enum MHD_Result ret = MHD_queue_response(connection, static_cast<unsigned>(status), response);
	MHD_destroy_response(response);
	return ret;
}

} // namespace

int
MetricsServer::answer(const Metrics &metrics, const std::string &method, const std::string &path, std::string &body,
					  std::string &content_type)
{
	content_type = "text/plain";
	if (method != "GET" && method != "HEAD") {
		body = "only GET\n";
		return 405;
	}
	if (path == "/metrics") {
		content_type = "text/plain; version=0.0.4";
		body = metrics.render();
		return 200;
	}
	/* healthy: the loops turn and are connected; ready: that, once READY was said, and not stopping */
	if (path == "/healthz" || path == "/readyz") {
		if (!metrics.alive(monotonic_ms(), 30000))
			body = "a worker loop is stuck\n";
		else if (!metrics.connected())
			body = "not connected: " + metrics.down() + "\n";
		else if (path == "/readyz" && stop_requested.load())
			body = "stopping\n";
		else if (path == "/readyz" && !metrics.ready)
			body = "starting\n";
		else
			body = "ok\n";
		return body == "ok\n" ? 200 : 503;
	}
	body = "try /metrics, /healthz or /readyz\n";
	return 404;
}

MetricsServer::~MetricsServer()
{
	stop();
}

void
MetricsServer::stop()
{
	if (daemon_ != nullptr)
		MHD_stop_daemon(daemon_);
	daemon_ = nullptr;
}

bool
MetricsServer::listen(const std::string &address, int port)
{
	std::string host = address;
	if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
		host = host.substr(1, host.size() - 2);
	struct sockaddr_in sa4;
	struct sockaddr_in6 sa6;
	std::memset(&sa4, 0, sizeof(sa4));
	std::memset(&sa6, 0, sizeof(sa6));
	const struct sockaddr *sa = nullptr;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY;
	if (inet_pton(AF_INET, host.c_str(), &sa4.sin_addr) == 1) {
		sa4.sin_family = AF_INET;
		sa4.sin_port = htons(static_cast<std::uint16_t>(port));
		sa = reinterpret_cast<const struct sockaddr *>(&sa4);
	} else if (inet_pton(AF_INET6, host.c_str(), &sa6.sin6_addr) == 1) {
		sa6.sin6_family = AF_INET6;
		sa6.sin6_port = htons(static_cast<std::uint16_t>(port));
		sa = reinterpret_cast<const struct sockaddr *>(&sa6);
		/* "::" takes IPv4 too (IPV6_V6ONLY off); any other IPv6 address is that address only */
		flags |= IN6_IS_ADDR_UNSPECIFIED(&sa6.sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
	} else {
		error_ = "invalid address \"" + address + "\" (an IPv4 or IPv6 address, such as 127.0.0.1 or ::1)";
		return false;
	}
	/* a pool of threads, each an epoll loop: every connection is served concurrently, none blocks another */
	errno = 0;
	daemon_ = MHD_start_daemon(
		flags, static_cast<std::uint16_t>(port), nullptr, nullptr, &handle, const_cast<Metrics *>(&metrics_),
		MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, max_connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout_s,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 128u, MHD_OPTION_END);
	if (daemon_ == nullptr) {
		error_ = errno != 0 ? std::strerror(errno) : "libmicrohttpd could not start";
		return false;
	}
	return true;
}

} // namespace flakeguard::sidecar
