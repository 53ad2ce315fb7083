/*
 * metrics.hpp
 *	  The sidecar's own figures, served as /metrics (Prometheus text format),
 *	  /healthz and /readyz on --metrics-port.
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
	/* the daemon said READY (every connection was up once) */
	std::atomic<bool> ready{false};
	/*
	 * The ingest stream as its group sees it, read every backlog_interval_ms
	 * by the ingest loop (-1: not known yet, or Redis did not say):
	 * entries not yet delivered to the group (XINFO GROUPS lag), entries
	 * delivered and not acknowledged (pending), and the Unix time in ms of
	 * the oldest entry not acknowledged (0: none), from its id.
	 */
	static constexpr std::int64_t backlog_interval_ms = 1000;
	std::atomic<std::int64_t> stream_undelivered{-1}, stream_pending{-1}, stream_oldest_unacked_ms{-1};

	std::string render() const;
	/* Every running loop turned within the last stale_ms. */
	bool alive(std::int64_t now_ms, std::int64_t stale_ms) const;
	/* Both loops are connected to both servers. */
	bool connected() const;
	/* The connections that are down, for messages ("cache: PostgreSQL, ingest: Redis"); "" when none. */
	std::string down() const;
};

/*
 * The process's figures under their standard Prometheus names
 * (process_cpu_seconds_total, ...), read from /proc/self; appended to out.
 * Those /proc cannot give are left out.
 */
void render_process_metrics(std::string &out);

/*
 * The HTTP/1.1 server of GET /metrics, /healthz and /readyz: libmicrohttpd
 * with a pool of threads of its own (each an epoll loop over non-blocking
 * sockets), so no client, however slow or idle, delays another client or the
 * daemon's signal handling, and scrapes are rendered side by side.
 * Connections are capped (max_connections, max_connections_per_ip per client
 * address), kept alive between requests and closed when idle
 * (idle_timeout_s).  IPv4 or IPv6; "::" listens on both.
 */
class MetricsServer {
  public:
	/*
	 * Each thread takes an equal share of max_connections.  Two: then a share
	 * is max_connections_per_ip, so one client address cannot fill a thread;
	 * libmicrohttpd 0.9.75 (Debian 12) stops a pool whose thread is full only
	 * after the idle timeout (seen with four threads and one address).
	 */
	static constexpr unsigned threads = 2;
	static constexpr unsigned max_connections = 512;
	/* per client address: one client cannot take every connection and lock probes out */
	static constexpr unsigned max_connections_per_ip = 256;
	static constexpr unsigned idle_timeout_s = 10;
	static_assert(max_connections / threads <= max_connections_per_ip, "one address could fill a thread");

	MetricsServer(const Metrics &metrics) : metrics_(metrics) {}
	~MetricsServer();
	MetricsServer(const MetricsServer &) = delete;
	MetricsServer &operator=(const MetricsServer &) = delete;
	/*
	 * Listens on address:port and starts serving; false with error() set when
	 * it cannot.  address: an IPv4 or IPv6 address, the latter with or without
	 * brackets ("::1", "[::1]"); "::" is every address of both families.
	 */
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
