# FlakeGuard -- build and install the PostgreSQL extension with PGXS.
#
#   make && make install     build and install flakeguard.so, control and SQL files
#   make check               install missing packages (as root), build everything with
#                            -Werror, install, and run every test tier (tests/check.sh)
#   make unit | fuzz         only the core's unit tests / a 10-minute fuzz run
#   make bench               run the benchmarks and rewrite bench/RESULTS.md
#   make demo | demo-stop    a private cluster under .demo/ reading sample reports
#   make deb                 the Debian packages postgresql-15-flakeguard and
#                            flakeguard-sidecar in build/deb/ (docs/packages.md)
#
# The driver goals do not include PGXS: its own "check" target only says
# that it is not supported.

DRIVER_GOALS := check unit fuzz bench demo demo-stop deb

ifneq ($(filter $(DRIVER_GOALS),$(MAKECMDGOALS)),)

.PHONY: $(DRIVER_GOALS)
check:
	@./tests/check.sh all
unit:
	@./tests/check.sh unit
fuzz:
	@./tests/fuzz/run.sh $(or $(FUZZ_SECONDS),600)
bench:
	@./bench/run.sh
demo:
	@./scripts/demo.sh start
demo-stop:
	@./scripts/demo.sh stop
deb:
	@./scripts/build-deb.sh

else

EXTENSION = flakeguard
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = flakeguard
OBJS = $(patsubst %.cpp,%.o,$(sort $(wildcard extension/src/core/*.cpp extension/src/pg/*.cpp)))

# sql/flakeguard.sql is HEAD: the current definition of every object, which
# the build installs as the script of the current version.  Released
# versions stay reachable through the frozen 0.1.0 script and the upgrade
# scripts (sql/README.md); tests/integration/upgrade.sh checks that an
# upgraded catalog equals a fresh install of HEAD.
SQL_HEAD = sql/$(EXTENSION).sql
SQL_BASE = sql/$(EXTENSION)--0.1.0.sql
SQL_UPGRADES = $(shell ls sql/$(EXTENSION)--*--*.sql 2>/dev/null | sort -V)
DATA_built = sql/built/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(SQL_BASE) $(SQL_UPGRADES)

# `make installcheck` against a running server; `make check` runs the same
# schedule on a temporary instance.
REGRESS = $(shell sed -n 's/^test: //p' tests/regress/schedule)
REGRESS_OPTS = --inputdir=tests/regress --outputdir=tests/regress/output

# PostgreSQL headers as system headers: -Wextra -Werror then applies to our code only.
PG_CPPFLAGS = -I$(srcdir)/extension/include -isystem $(includedir_server) $(shell pkg-config --cflags libxml-2.0)
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror \
	-fvisibility-inlines-hidden
SHLIB_LINK = -lstdc++ $(shell pkg-config --libs libxml-2.0)
EXTRA_CLEAN = sql/built tests/regress/output tests/isolation/output

# No LLVM bitcode: PGXS's bitcode rule does not see PG_CXXFLAGS, and the
# parser gains nothing from JIT inlining.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/built/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_HEAD) $(EXTENSION).control
	@mkdir -p sql/built
	cp $(SQL_HEAD) $@

endif
