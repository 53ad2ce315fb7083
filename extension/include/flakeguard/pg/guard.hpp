/*
 * guard.hpp
 *	  The C++ -> PostgreSQL error boundary.
 *
 * Glue code calls into C++ only through pg::guarded(f).  guarded() runs f
 * inside try/catch, copies whatever was thrown into a plain struct, leaves
 * the catch block (so every destructor has run and no exception is live),
 * and only then raises the error with ereport() -- keeping the SQLSTATE,
 * detail and hint that the core chose.  Nothing with a destructor may be
 * alive in the caller's frame when guarded() returns or raises; keep C++
 * objects on the heap, owned through a memory-context reset callback.
 *
 * This header must not include postgres.h: it is included by glue files
 * before the PostgreSQL headers, after the core headers.
 */
#pragma once

#include "flakeguard/core/error.hpp"

#include <algorithm>
#include <cstring>
#include <exception>
#include <new>

namespace flakeguard::pg {

/* What a C++ exception said, in storage that survives leaving the catch block. */
struct CapturedError {
	char sqlstate[6];
	char message[1024];
	char detail[2048];
	char hint[1024];
	Limit limit;
	bool interrupted;
};

/* Raises *err with ereport(ERROR); defined in guard.cpp next to the PostgreSQL headers. */
[[noreturn]] void raise_captured(const CapturedError *err);

/* Polled by long-running core loops: a query cancel or termination is pending. */
bool interrupt_pending();

inline void
copy_text(char *dst, std::size_t size, const char *src) noexcept
{
	std::size_t n = std::min(std::strlen(src), size - 1);
	std::memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Runs f; when it throws, describes the exception in *err and returns true. */
template <typename F>
bool
capture_exception(F &&f, CapturedError *err) noexcept
{
	std::memset(err, 0, sizeof(*err));
	try {
		f();
		return false;
	} catch (const Error &e) {
		copy_text(err->sqlstate, sizeof(err->sqlstate), e.sqlstate());
		copy_text(err->message, sizeof(err->message), e.what());
		copy_text(err->detail, sizeof(err->detail), e.detail().c_str());
		copy_text(err->hint, sizeof(err->hint), e.hint().c_str());
		err->limit = e.limit();
	} catch (const Interrupted &) {
		err->interrupted = true;
	} catch (const std::bad_alloc &) {
		copy_text(err->sqlstate, sizeof(err->sqlstate), "53200");
		copy_text(err->message, sizeof(err->message), "out of memory");
	} catch (const std::exception &e) {
		copy_text(err->sqlstate, sizeof(err->sqlstate), sqlstate::internal_error);
		copy_text(err->message, sizeof(err->message), e.what());
	} catch (...) {
		copy_text(err->sqlstate, sizeof(err->sqlstate), sqlstate::internal_error);
		copy_text(err->message, sizeof(err->message), "unexpected C++ exception");
	}
	return true;
}

/* Runs f and re-raises anything it throws as a PostgreSQL ERROR. */
template <typename F>
void
guarded(F &&f)
{
	CapturedError err;
	if (capture_exception(f, &err))
		raise_captured(&err);
}

} // namespace flakeguard::pg
