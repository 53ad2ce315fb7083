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

} // namespace flakeguard::sidecar
