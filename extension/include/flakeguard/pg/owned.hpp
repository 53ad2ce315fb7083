/*
 * owned.hpp
 *	  C++ objects owned by a PostgreSQL memory context.
 *
 * make_owned<T>(cxt, args...) constructs a T in memory allocated from cxt
 * and registers a reset callback that runs ~T() when cxt is reset or
 * deleted -- including when an error aborts the query -- so whatever T
 * allocated with operator new is released with the context.  This is how
 * aggregate states and per-call scratch objects outlive one C++ frame
 * without ever being alive in a frame PostgreSQL might longjmp through.
 *
 * Include after postgres.h.
 */
#pragma once

#include "flakeguard/pg/guard.hpp"

#include <new>
#include <utility>

namespace flakeguard::pg {

template <typename T>
struct OwnedBox {
	alignas(T) unsigned char storage[sizeof(T)];
	MemoryContextCallback callback;
};

template <typename T, typename... A>
T *
make_owned(MemoryContext cxt, A &&...args)
{
	static_assert(alignof(T) <= MAXIMUM_ALIGNOF, "palloc'd memory is only MAXALIGNed");
	/* may raise: nothing of C++ is alive yet */
	auto *box = static_cast<OwnedBox<T> *>(MemoryContextAllocZero(cxt, sizeof(OwnedBox<T>)));
	T *obj = nullptr;
	guarded([&] { obj = new (box->storage) T(std::forward<A>(args)...); });
	box->callback.func = [](void *arg) { reinterpret_cast<T *>(static_cast<OwnedBox<T> *>(arg)->storage)->~T(); };
	box->callback.arg = box;
	MemoryContextRegisterResetCallback(cxt, &box->callback);
	return obj;
}

} // namespace flakeguard::pg
