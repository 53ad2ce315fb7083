/*
 * core_only.hpp
 *	  Header firewall of the PostgreSQL-free core library.
 *
 * Every header under flakeguard/core includes this one first.  The core is
 * linked into the extension, the sidecar and the unit tests; it must never
 * see postgres.h, whose macros (elog, palloc, Assert, ...) and setjmp-based
 * error handling do not mix with C++ exceptions and destructors.
 */
#pragma once

#ifdef POSTGRES_H
#error                                                                                                                 \
	"flakeguard core headers must not be included after postgres.h; include them from a glue file before the PostgreSQL headers"
#endif
