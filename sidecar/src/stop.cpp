/*
 * stop.cpp
 *	  Shutdown flag, interruptible sleeps and reconnect backoff.
 */
#include "stop.hpp"

#include "log.hpp"

#include <algorithm>
#include <thread>
#include <unistd.h>

namespace flakeguard::sidecar {

std::atomic<bool> stop_requested{false};

bool
sleep_unless_stopped(std::int64_t ms)
{
	const std::int64_t until = monotonic_ms() + ms;
	for (;;) {
		if (stop_requested.load())
			return false;
		std::int64_t left = until - monotonic_ms();
		if (left <= 0)
			return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(std::min<std::int64_t>(left, 50)));
	}
}

std::int64_t
monotonic_ms()
{
	return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
		.count();
}

double
wall_seconds()
{
	return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Backoff::Backoff(std::int64_t base_ms, std::int64_t cap_ms)
	: base_ms_(base_ms), cap_ms_(cap_ms),
	  rng_(static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
		   static_cast<unsigned>(getpid()))
{
}

std::int64_t
Backoff::next_ms()
{
	std::int64_t ceiling = base_ms_;
	for (int i = 0; i < attempt_ && ceiling < cap_ms_; i++)
		ceiling *= 2;
	ceiling = std::min(ceiling, cap_ms_);
	attempt_++;
	std::uniform_int_distribution<std::int64_t> jitter(ceiling / 2, ceiling);
	return jitter(rng_);
}

std::int64_t
Reconnect::wait_ms() const
{
	return std::max<std::int64_t>(0, retry_at_ - monotonic_ms());
}

void
Reconnect::log_failure(const char *loop, const char *server, std::int64_t delay, const std::string &error)
{
	log(Level::warning, "%s: could not connect to %s (retrying in %lld ms): %s", loop, server,
		static_cast<long long>(delay), error.c_str());
}

} // namespace flakeguard::sidecar
