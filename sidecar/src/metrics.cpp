/*
 * metrics.cpp
 *	  /metrics and /healthz, served by libmicrohttpd.
 */
#include "metrics.hpp"

#include "stop.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>
#include <microhttpd.h>
#include <sys/socket.h>

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
	return out;
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
	   size_t *upload_data_size, void **)
{
	const auto *metrics = static_cast<const Metrics *>(cls);
	/* a request body is neither wanted nor read: answer at once */
	if (upload_data_size != nullptr && *upload_data_size != 0)
		*upload_data_size = 0;
	std::string body, type;
	const int status = MetricsServer::answer(*metrics, method, url, body, type);
	struct MHD_Response *response =
		MHD_create_response_from_buffer(body.size(), const_cast<char *>(body.data()), MHD_RESPMEM_MUST_COPY);
	if (response == nullptr)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type.c_str());
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
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
	if (path == "/healthz") {
		const bool alive = metrics.alive(monotonic_ms(), 30000);
		body = alive ? "ok\n" : "a worker loop is stuck\n";
		return alive ? 200 : 503;
	}
	body = "try /metrics or /healthz\n";
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
	struct sockaddr_in sa;
	std::memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(static_cast<std::uint16_t>(port));
	if (inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1) {
		error_ = "invalid IPv4 address \"" + address + "\"";
		return false;
	}
	/* one internal thread with epoll: every connection is served concurrently, none blocks another */
	errno = 0;
	daemon_ = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY, static_cast<std::uint16_t>(port), nullptr, nullptr,
		&handle, const_cast<Metrics *>(&metrics_), MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_LIMIT,
		max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
		idle_timeout_s, MHD_OPTION_LISTEN_BACKLOG_SIZE, 128u, MHD_OPTION_END);
	if (daemon_ == nullptr) {
		error_ = errno != 0 ? std::strerror(errno) : "libmicrohttpd could not start";
		return false;
	}
	return true;
}

} // namespace flakeguard::sidecar
