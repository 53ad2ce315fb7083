/*
 * stop.hpp
 *	  Shutdown flag, interruptible sleeps and reconnect backoff.
 *
 * Signals never run code of ours: the daemon's main thread reads them from a
 * signalfd and sets these flags; the workers poll them between steps.
 */
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>

namespace flakeguard::sidecar {

/* Set by SIGTERM/SIGINT: finish the current batch, then return. */
extern std::atomic<bool> stop_requested;

/* Sleeps up to ms, waking early when a stop is requested; false if it was. */
bool sleep_unless_stopped(std::int64_t ms);

/* Milliseconds on a monotonic clock. */
std::int64_t monotonic_ms();

/* Seconds since the Unix epoch, with microseconds. */
double wall_seconds();

/*
 * Capped exponential backoff with full jitter: the n-th delay is uniform in
 * [base * 2^n / 2, base * 2^n], capped at cap_ms.
 */
class Backoff {
  public:
	Backoff(std::int64_t base_ms = 100, std::int64_t cap_ms = 10000);
	std::int64_t next_ms();
	void
	reset()
	{
		attempt_ = 0;
	}
	int
	attempts() const
	{
		return attempt_;
	}

  private:
	std::int64_t base_ms_;
	std::int64_t cap_ms_;
	int attempt_ = 0;
	std::minstd_rand rng_;
};

/*
 * When to try a connection again, and whether it ever was up (so a success
 * counts as a reconnect).  Both loops hold one per connection.
 */
class Reconnect {
  public:
	explicit Reconnect(std::atomic<std::uint64_t> &reconnects) : reconnects_(reconnects) {}

	/*
	 * Calls connect() when a try is due; it returns "" on success or why it
	 * failed (then logged, and the next try put off by the backoff).
	 * True when connected now.
	 */
	template <class Connect>
	bool
	attempt(const char *loop, const char *server, Connect connect)
	{
		if (monotonic_ms() < retry_at_)
			return false;
		std::string error = connect();
		if (!error.empty()) {
			std::int64_t delay = backoff_.next_ms();
			retry_at_ = monotonic_ms() + delay;
			log_failure(loop, server, delay, error);
			return false;
		}
		if (was_up_)
			reconnects_++;
		was_up_ = true;
		backoff_.reset();
		return true;
	}

	/* Milliseconds until the next try is due (0 when it is). */
	std::int64_t wait_ms() const;

  private:
	static void log_failure(const char *loop, const char *server, std::int64_t delay, const std::string &error);
	Backoff backoff_;
	std::int64_t retry_at_ = 0;
	bool was_up_ = false;
	std::atomic<std::uint64_t> &reconnects_;
};

} // namespace flakeguard::sidecar
