/*
 * config.hpp
 *	  The sidecar's settings: command-line options over FLAKEGUARD_*
 *	  environment variables over the --config file over defaults (main.cpp
 *	  documents each).
 */
#pragma once

#include "redis.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace flakeguard::sidecar {

/*
 * A setting SIGHUP may change while the loops run: the main thread stores,
 * the loops load (each read sees the old or the new value, never a torn one).
 * Reads convert to T; copies copy the value.
 */
template <class T>
class Live {
  public:
	Live(T value = T()) : value_(value) {}
	Live(const Live &other) : value_(other.get()) {}
	Live &
	operator=(const Live &other)
	{
		value_.store(other.get(), std::memory_order_relaxed);
		return *this;
	}
	Live &
	operator=(T value)
	{
		value_.store(value, std::memory_order_relaxed);
		return *this;
	}
	operator T() const { return get(); }
	T
	get() const
	{
		return value_.load(std::memory_order_relaxed);
	}

  private:
	std::atomic<T> value_;
};

struct Config {
	std::string pg = ""; /* libpq connection string; "" = libpq's PG* defaults */
	std::string redis_url = "redis://127.0.0.1:6379";
	RedisEndpoint redis;
	std::string prefix = "fg:";                    /* Redis key prefix */
	std::string stream = "fg:ingest";              /* the ingest stream; dead letters go to <stream>:dead */
	std::string group = "ingesters";               /* its consumer group */
	std::string consumer;                          /* this consumer's name; default host:pid */
	Live<bool> refresh = false;                    /* write changed tests' values back fresh (SIGHUP) */
	bool create_repositories = false;              /* ingest for repositories not yet in the database */
	Live<std::size_t> batch_size = 1000;           /* executions per batch (SIGHUP) */
	Live<std::int64_t> batch_ms = 200;             /* longest wait to fill a batch (SIGHUP) */
	Live<std::int64_t> reconcile_ms = 30000;       /* timer reconciliation of versions (SIGHUP) */
	Live<std::int64_t> claim_idle_ms = 60000;      /* pending this long at a dead consumer: claim it (SIGHUP) */
	Live<int> max_deliveries = 5;                  /* deliveries before an entry is dead-lettered (SIGHUP) */
	std::size_t max_report_size = 100u << 20;      /* bytes per stream entry's reports */
	Live<std::size_t> max_batch_bytes = 64u << 20; /* bytes a batch holds before it is committed (SIGHUP) */
	std::int64_t stream_maxlen = 1000000;          /* XADD MAXLEN ~ of the ingest stream */
	int metrics_port = 0;                          /* 0: no metrics server */
	std::string metrics_address = "127.0.0.1";
	std::string log_file;        /* "" = stderr */
	int redis_timeout_ms = 5000; /* per Redis command */
	std::string
	dead_stream() const
	{
		return stream + ":dead";
	}
	/* the list an entry's outcome is pushed to when it asked for one (push --wait) */
	std::string
	reply_key(const std::string &entry) const
	{
		return stream + ":reply:" + entry;
	}
};

} // namespace flakeguard::sidecar
