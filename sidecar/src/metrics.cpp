/*
 * metrics.cpp
 *	  /metrics and /healthz.
 */
#include "metrics.hpp"

#include "stop.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
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

MetricsServer::~MetricsServer()
{
	if (fd_ >= 0)
		::close(fd_);
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
	fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd_ < 0 || setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(fd_, reinterpret_cast<struct sockaddr *>(&sa), sizeof(sa)) != 0 || ::listen(fd_, 16) != 0) {
		error_ = std::strerror(errno);
		return false;
	}
	return true;
}

void
MetricsServer::serve_one()
{
	int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
	if (client < 0)
		return;
	/* one short request: wait at most 1 s for its first line */
	char request[1024];
	std::size_t got = 0;
	std::int64_t deadline = monotonic_ms() + 1000;
	while (got < sizeof(request) - 1 && std::memchr(request, '\n', got) == nullptr) {
		struct pollfd p = {client, POLLIN, 0};
		std::int64_t left = deadline - monotonic_ms();
		if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0)
			break;
		ssize_t n = ::recv(client, request + got, sizeof(request) - 1 - got, 0);
		if (n <= 0)
			break;
		got += static_cast<std::size_t>(n);
	}
	request[got] = '\0';

	std::string status = "200 OK", type = "text/plain; version=0.0.4", body;
	if (std::strncmp(request, "GET /metrics", 12) == 0 && (request[12] == ' ' || request[12] == '?')) {
		body = metrics_.render();
	} else if (std::strncmp(request, "GET /healthz", 12) == 0 && (request[12] == ' ' || request[12] == '?')) {
		bool alive = metrics_.alive(monotonic_ms(), 30000);
		status = alive ? "200 OK" : "503 Service Unavailable";
		type = "text/plain";
		body = alive ? "ok\n" : "a worker loop is stuck\n";
	} else {
		status = "404 Not Found";
		type = "text/plain";
		body = "try /metrics or /healthz\n";
	}
	std::string response = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
						   "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
						   body;
	std::size_t sent = 0;
	while (sent < response.size()) {
		ssize_t n = ::send(client, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		sent += static_cast<std::size_t>(n);
	}
	::close(client);
}

} // namespace flakeguard::sidecar
