#!/usr/bin/env bash
# tests/citus/build.sh -- build Citus once per machine for the Citus tier and
# install it into the PostgreSQL the tests use.
#
# Citus is not packaged for Debian 12.  The tier builds its release source
# (CITUS_SOURCE: a folder holding citus-13.2.2.tar.gz and the patch for
# recent PostgreSQL 15 minors; by default the vendored copy beside the
# checkout) under build/citus/, once: a later run finds the stamp of a finished build and
# only installs it again when PostgreSQL's library folder lacks citus.so.
# Prints "citus: built" / "citus: cached" / "citus: no source at ..."; exits
# 2 when there is no source (the tier is then skipped), 1 on a failed build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/common.sh"

VERSION=13.2.2
SHA256=c8fc76dc8294636a52b1a0dd75a20d8b4a36937df6443e30ca84d8d0464a6bb9
SOURCE=${CITUS_SOURCE:-$ROOT/../shared/vendor/citus}
TARBALL=$SOURCE/citus-$VERSION.tar.gz
BUILD=$ROOT/build/citus
SRC=$BUILD/citus-$VERSION
PG_CONFIG=${PG_CONFIG:-pg_config}
# the build is for one PostgreSQL: its version is part of the stamp
STAMP=$BUILD/built-$VERSION-$($PG_CONFIG --version | tr -c 'A-Za-z0-9.\n' '_')

installed() {
	[ -f "$($PG_CONFIG --pkglibdir)/citus.so" ] &&
		[ -f "$($PG_CONFIG --sharedir)/extension/citus--$VERSION.sql" ] &&
		cmp -s "$SRC/src/backend/distributed/citus.so" "$($PG_CONFIG --pkglibdir)/citus.so"
}

if [ -f "$STAMP" ]; then
	installed || as_root make -C "$SRC" -s install >"$BUILD/install.log" 2>&1 ||
		{ tail -n 30 "$BUILD/install.log"; exit 1; }
	echo "citus: cached ($STAMP)"
	exit 0
fi
if [ ! -f "$TARBALL" ]; then
	echo "citus: no source at $TARBALL (set CITUS_SOURCE)"
	exit 2
fi
echo "$SHA256  $TARBALL" | sha256sum -c --quiet - || { echo "citus: $TARBALL does not match its sha256"; exit 1; }

rm -rf "$BUILD"
mkdir -p "$BUILD"
tar -xzf "$TARBALL" -C "$BUILD"
for patch in "$SOURCE"/*.patch; do
	[ -f "$patch" ] || continue
	patch -d "$SRC" -p1 -s <"$patch"
done
start=$(date +%s)
(
	cd "$SRC"
	# the columnar store needs liblz4/libzstd, the rest libcurl and GSSAPI:
	# installed by scripts/install-deps.sh
	./configure PG_CONFIG="$PG_CONFIG" --without-libcurl >"$BUILD/configure.log" 2>&1 &&
		make -s -j"${JOBS:-2}" >"$BUILD/build.log" 2>&1
) || { tail -n 40 "$BUILD/configure.log" "$BUILD/build.log" 2>/dev/null; exit 1; }
as_root make -C "$SRC" -s install >"$BUILD/install.log" 2>&1 || { tail -n 30 "$BUILD/install.log"; exit 1; }
touch "$STAMP"
echo "citus: built in $(($(date +%s) - start)) s"
