/*
 * redis.cpp
 *	  A hiredis 0.14 connection that assumes it will drop.
 */
#include "redis.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <poll.h>
#include <sys/time.h>

namespace flakeguard::sidecar {

namespace {

int
parse_int(const std::string &text, int low, int high, const char *what)
{
	char *end = nullptr;
	errno = 0;
	long v = std::strtol(text.c_str(), &end, 10);
	if (text.empty() || *end != '\0' || errno != 0 || v < low || v > high)
		throw std::invalid_argument(std::string("invalid ") + what + " \"" + text + "\" in Redis URL");
	return static_cast<int>(v);
}

struct timeval
to_timeval(int ms)
{
	struct timeval tv;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return tv;
}

} // namespace

RedisEndpoint
parse_redis_url(const std::string &url)
{
	RedisEndpoint ep;
	std::string rest;
	if (url.rfind("unix://", 0) == 0 || url.rfind("unix:", 0) == 0) {
		rest = url.substr(url.rfind("unix://", 0) == 0 ? 7 : 5);
		auto q = rest.find("?db=");
		if (q != std::string::npos) {
			ep.db = parse_int(rest.substr(q + 4), 0, 1 << 20, "database number");
			rest.resize(q);
		}
		if (rest.empty() || rest[0] != '/')
			throw std::invalid_argument("Redis socket path in \"" + url + "\" must be absolute");
		ep.unix_path = rest;
		return ep;
	}
	if (url.rfind("redis://", 0) != 0)
		throw std::invalid_argument("Redis URL \"" + url + "\" must start with redis:// or unix://");
	rest = url.substr(8);
	auto at = rest.rfind('@');
	if (at != std::string::npos) {
		std::string auth = rest.substr(0, at);
		auto colon = auth.find(':');
		ep.password = colon == std::string::npos ? auth : auth.substr(colon + 1);
		rest = rest.substr(at + 1);
	}
	auto slash = rest.find('/');
	if (slash != std::string::npos) {
		std::string db = rest.substr(slash + 1);
		if (!db.empty())
			ep.db = parse_int(db, 0, 1 << 20, "database number");
		rest.resize(slash);
	}
	auto colon = rest.rfind(':');
	if (colon != std::string::npos && rest.find(']') == std::string::npos) {
		ep.port = parse_int(rest.substr(colon + 1), 1, 65535, "port");
		rest.resize(colon);
	}
	if (!rest.empty())
		ep.host = rest;
	return ep;
}

RedisConn::RedisConn(RedisEndpoint endpoint, int timeout_ms) : endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms)
{
}

RedisConn::~RedisConn()
{
	close();
}

void
RedisConn::close()
{
	if (ctx_ != nullptr)
		redisFree(ctx_);
	ctx_ = nullptr;
}

bool
RedisConn::connect()
{
	close();
	struct timeval tv = to_timeval(timeout_ms_);
	redisContext *c = endpoint_.unix_path.empty() ? redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, tv)
												  : redisConnectUnixWithTimeout(endpoint_.unix_path.c_str(), tv);
	if (c == nullptr || c->err != 0) {
		error_ = c != nullptr ? c->errstr : "out of memory";
		if (c != nullptr)
			redisFree(c);
		return false;
	}
	ctx_ = c;
	if (redisSetTimeout(ctx_, tv) != REDIS_OK ||
		(endpoint_.unix_path.empty() && redisEnableKeepAlive(ctx_) != REDIS_OK)) {
		error_ = ctx_->errstr;
		close();
		return false;
	}
	try {
		if (!endpoint_.password.empty())
			check_reply(command({"AUTH", endpoint_.password}).get(), "AUTH");
		if (endpoint_.db != 0)
			check_reply(command({"SELECT", std::to_string(endpoint_.db)}).get(), "SELECT");
	} catch (const RedisError &e) {
		error_ = e.what();
		close();
		return false;
	}
	error_.clear();
	return true;
}

void
RedisConn::set_timeout_ms(int ms)
{
	if (ctx_ != nullptr && redisSetTimeout(ctx_, to_timeval(ms)) != REDIS_OK)
		fail("setting the socket timeout");
}

void
RedisConn::fail(const char *what)
{
	std::string message = std::string("Redis connection lost while ") + what;
	if (ctx_ != nullptr && ctx_->errstr[0] != '\0')
		message += std::string(": ") + ctx_->errstr;
	error_ = message;
	close();
	throw RedisError(message);
}

RedisReply
RedisConn::command(const std::vector<std::string_view> &argv)
{
	auto replies = pipeline({argv});
	return std::move(replies.front());
}

std::vector<RedisReply>
RedisConn::pipeline(const std::vector<std::vector<std::string_view>> &commands)
{
	if (ctx_ == nullptr)
		throw RedisError("not connected to Redis");
	std::vector<const char *> args;
	std::vector<size_t> lengths;
	for (const auto &argv : commands) {
		args.clear();
		lengths.clear();
		for (auto a : argv) {
			args.push_back(a.data());
			lengths.push_back(a.size());
		}
		if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lengths.data()) != REDIS_OK)
			fail("sending a command");
	}
	std::vector<RedisReply> replies;
	replies.reserve(commands.size());
	for (std::size_t i = 0; i < commands.size(); i++) {
		void *reply = nullptr;
		if (redisGetReply(ctx_, &reply) != REDIS_OK || reply == nullptr)
			fail("reading a reply");
		replies.emplace_back(static_cast<redisReply *>(reply));
	}
	return replies;
}

RedisConn::Wait
RedisConn::command_until(const std::vector<std::string_view> &argv, int wake_fd, std::int64_t wait_ms,
						 RedisReply &reply)
{
	reply.reset();
	if (ctx_ == nullptr)
		throw RedisError("not connected to Redis");
	std::vector<const char *> args;
	std::vector<size_t> lengths;
	for (auto a : argv) {
		args.push_back(a.data());
		lengths.push_back(a.size());
	}
	if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lengths.data()) != REDIS_OK)
		fail("sending a command");
	for (int done = 0; !done;)
		if (redisBufferWrite(ctx_, &done) != REDIS_OK)
			fail("sending a command");
	const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
	for (;;) {
		const auto left =
			std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
		struct pollfd fds[2] = {{ctx_->fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
		const int n = left <= 0 ? 0 : poll(fds, 2, static_cast<int>(std::min<std::int64_t>(left, 1 << 30)));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("waiting for a reply");
		if (n == 0 || fds[0].revents == 0) {
			/* a reply that came with the wake-up is taken; the wake-up is not lost (the fd stays readable) */
			close();
			return n == 0 ? Wait::timed_out : Wait::woken;
		}
		/* readable, or closed (POLLHUP, POLLERR): hiredis reads the rest of the reply or fails */
		void *r = nullptr;
		if (redisGetReply(ctx_, &r) != REDIS_OK || r == nullptr)
			fail("reading a reply");
		reply.reset(static_cast<redisReply *>(r));
		return Wait::reply;
	}
}

std::optional<std::string>
reply_string(const redisReply *reply)
{
	if (reply == nullptr)
		return std::nullopt;
	switch (reply->type) {
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
		return std::string(reply->str, reply->len);
	case REDIS_REPLY_INTEGER:
		return std::to_string(reply->integer);
	default:
		return std::nullopt;
	}
}

void
check_reply(const redisReply *reply, const char *command)
{
	if (reply != nullptr && reply->type == REDIS_REPLY_ERROR)
		throw RedisErrorReply(std::string(command) + " failed: " + std::string(reply->str, reply->len));
}

} // namespace flakeguard::sidecar
