/*
 * metrics.hpp
 *	  The sidecar's own figures, served as /metrics (Prometheus text format)
 *	  and /healthz on --metrics-port.
 */
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

struct MHD_Daemon;

namespace flakeguard::sidecar {

/* A latency histogram in seconds, with fixed buckets. */
class Histogram {
  public:
	static constexpr std::array<double, 14> bounds = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
													  0.2,   0.5,   1,     2,    5,    10,   30};
	void observe(double seconds);
	void render(std::string &out, const char *name, const char *help) const;

  private:
	mutable std::mutex mutex_;
	std::array<std::uint64_t, bounds.size()> counts_{};
	std::uint64_t count_ = 0;
	double sum_ = 0;
};

struct Metrics {
	using Counter = std::atomic<std::uint64_t>;
	/* stream ingestion */
	Counter executions{0}, reports{0}, batches{0}, batch_failures{0}, dead_letters{0}, claimed{0};
	Histogram batch_seconds;
	std::atomic<double> last_batch_executions_per_second{0};
	/* cache */
	Counter notifications{0}, invalidations{0}, full_invalidations{0}, lost_hints{0}, reconciles{0}, fills{0},
		redis_restarts{0}, redis_write_refusals{0}, unreadable_hints{0};
	Histogram invalidation_seconds;
	std::atomic<std::int64_t> redis_keyspace_hits{-1}, redis_keyspace_misses{-1};
	/* connections */
	Counter pg_reconnects{0}, redis_reconnects{0};
	std::atomic<bool> cache_pg_up{false}, cache_redis_up{false}, ingest_pg_up{false}, ingest_redis_up{false};
	/* liveness: monotonic ms of each loop's last turn (0: not running) */
	std::atomic<std::int64_t> cache_heartbeat_ms{0}, ingest_heartbeat_ms{0};

	std::string render() const;
	/* Every running loop turned within the last stale_ms. */
	bool alive(std::int64_t now_ms, std::int64_t stale_ms) const;
};

/*
 * The HTTP server of GET /metrics and GET /healthz: libmicrohttpd on a thread
 * of its own (one epoll loop over non-blocking sockets), so no client, however
 * slow or idle, delays another client or the daemon's signal handling.
 * Connections are capped (max_connections, max_connections_per_ip per
 * client address) and closed when idle (idle_timeout_s).
 */
class MetricsServer {
  public:
	static constexpr unsigned max_connections = 512;
	/* per client address: one client cannot take every connection and lock probes out */
	static constexpr unsigned max_connections_per_ip = 256;
	static constexpr unsigned idle_timeout_s = 10;

	MetricsServer(const Metrics &metrics) : metrics_(metrics) {}
	~MetricsServer();
	MetricsServer(const MetricsServer &) = delete;
	MetricsServer &operator=(const MetricsServer &) = delete;
	/* Listens on address:port and starts serving; false with error() set when it cannot. */
	bool listen(const std::string &address, int port);
	/* Stops serving (also done by the destructor). */
	void stop();
	const std::string &
	error() const
	{
		return error_;
	}
	/* The status line's code and the body of a request (the HTTP-free part, for unit tests). */
	static int answer(const Metrics &metrics, const std::string &method, const std::string &path, std::string &body,
					  std::string &content_type);

  private:
	const Metrics &metrics_;
	struct MHD_Daemon *daemon_ = nullptr;
	std::string error_;
};

} // namespace flakeguard::sidecar
