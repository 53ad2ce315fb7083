/*
 * config.hpp
 *	  The sidecar's settings: command-line options over FLAKEGUARD_*
 *	  environment variables over defaults (main.cpp documents each).
 */
#pragma once

#include "redis.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace flakeguard::sidecar {

struct Config {
	std::string pg = ""; /* libpq connection string; "" = libpq's PG* defaults */
	std::string redis_url = "redis://127.0.0.1:6379";
	RedisEndpoint redis;
	std::string prefix = "fg:";               /* Redis key prefix */
	std::string stream = "fg:ingest";         /* the ingest stream; dead letters go to <stream>:dead */
	std::string group = "ingesters";          /* its consumer group */
	std::string consumer;                     /* this consumer's name; default host:pid */
	bool refresh = false;                     /* write changed tests' values back fresh */
	bool create_repositories = false;         /* ingest for repositories not yet in the database */
	std::size_t batch_size = 1000;            /* executions per batch */
	std::int64_t batch_ms = 200;              /* longest wait to fill a batch */
	std::int64_t reconcile_ms = 30000;        /* timer reconciliation of versions */
	std::int64_t claim_idle_ms = 60000;       /* pending this long at a dead consumer: claim it */
	int max_deliveries = 5;                   /* deliveries before an entry is dead-lettered */
	std::size_t max_report_size = 100u << 20; /* bytes per stream entry's reports */
	std::size_t max_batch_bytes = 64u << 20;  /* bytes a batch holds before it is committed */
	std::int64_t stream_maxlen = 1000000;     /* XADD MAXLEN ~ of the ingest stream */
	int metrics_port = 0;                     /* 0: no metrics server */
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
