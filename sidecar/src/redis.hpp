/*
 * redis.hpp
 *	  A hiredis 0.14 connection that assumes it will drop.
 *
 * hiredis 0.14 (Debian 12) has no connect options or command timeout: the
 * connection is made with redisConnectWithTimeout, then given a socket
 * timeout and TCP keepalive (again after every reconnect, which hiredis does
 * not carry over).  After an I/O or protocol error a context cannot be reused;
 * the connection closes itself and the owner reconnects with backoff.
 */
#pragma once

#include "flakeguard/core/error.hpp"

#include <hiredis/hiredis.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace flakeguard::sidecar {

/* redis://[:password@]host[:port][/db] or unix:///path/to/socket[?db=N] */
struct RedisEndpoint {
	std::string host = "127.0.0.1";
	int port = 6379;
	std::string unix_path;
	std::string password;
	int db = 0;
};

/* Throws std::invalid_argument with a message naming what is wrong. */
RedisEndpoint parse_redis_url(const std::string &url);

/* The connection failed or dropped (the command may or may not have run): SQLSTATE 08006. */
class RedisError : public flakeguard::Error {
  public:
	explicit RedisError(const std::string &message, const char *sqlstate = flakeguard::sqlstate::connection_failure)
		: flakeguard::Error(sqlstate, message)
	{
	}
};

/*
 * Redis answered with an error reply (the connection is fine): SQLSTATE 53200
 * when it is out of memory, else 58000 (an error of a system outside PostgreSQL).
 */
class RedisErrorReply : public RedisError {
  public:
	explicit RedisErrorReply(const std::string &message)
		: RedisError(message,
					 is_oom(message) ? flakeguard::sqlstate::out_of_memory : flakeguard::sqlstate::system_error)
	{
	}
	/* The server is at maxmemory and refuses writes that need memory (noeviction). */
	bool
	oom() const
	{
		return is_oom(what());
	}

  private:
	static bool
	is_oom(std::string_view message)
	{
		return message.find("OOM ") != std::string_view::npos;
	}
};

struct RedisReplyFree {
	void
	operator()(redisReply *r) const
	{
		freeReplyObject(r);
	}
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyFree>;

class RedisConn {
  public:
	RedisConn(RedisEndpoint endpoint, int timeout_ms);
	~RedisConn();
	RedisConn(const RedisConn &) = delete;
	RedisConn &operator=(const RedisConn &) = delete;

	/* Connects (closing any old connection); false with error() set when it cannot. */
	bool connect();
	void close();
	bool
	ok() const
	{
		return ctx_ != nullptr;
	}
	const std::string &
	error() const
	{
		return error_;
	}
	/* Socket timeout for the following commands (a blocking read needs more than its BLOCK time). */
	void set_timeout_ms(int ms);

	/* One command.  Error replies are returned (type REDIS_REPLY_ERROR); I/O failures throw RedisError. */
	RedisReply command(const std::vector<std::string_view> &argv);
	/* Several commands in one write; the replies in order.  Throws RedisError. */
	std::vector<RedisReply> pipeline(const std::vector<std::vector<std::string_view>> &commands);

	/*
	 * A command whose reply may take long (BLPOP), abandoned when wake_fd (a
	 * signalfd, or -1) becomes readable or no reply came within wait_ms: then
	 * the connection is closed (the command may still be pending at the
	 * server) and reply is left empty.  Throws RedisError.
	 */
	enum class Wait { reply, woken, timed_out };
	Wait command_until(const std::vector<std::string_view> &argv, int wake_fd, std::int64_t wait_ms, RedisReply &reply);

  private:
	[[noreturn]] void fail(const char *what);
	RedisEndpoint endpoint_;
	int timeout_ms_;
	redisContext *ctx_ = nullptr;
	std::string error_;
};

/* The reply as a string (status, string, integer); nullopt for nil and others. */
std::optional<std::string> reply_string(const redisReply *reply);

/* Throws RedisErrorReply when reply is an error reply, naming the command. */
void check_reply(const redisReply *reply, const char *command);

} // namespace flakeguard::sidecar
