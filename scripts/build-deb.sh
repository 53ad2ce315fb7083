#!/usr/bin/env bash
# scripts/build-deb.sh -- `make deb`: the Debian packages of FlakeGuard in build/deb/
#
#   postgresql-15-flakeguard_V-1_ARCH.deb   the extension (PGXS, pg_buildext)
#   flakeguard-sidecar_V-1_ARCH.deb         the sidecar, its systemd unit and
#                                           /etc/default/flakeguard-sidecar
#   debug/*-dbgsym_V-1_ARCH.deb             their debug symbols
#
# V is flakeguard.control's default_version; debian/changelog must name V-1
# (tests/check.sh checks it too).  dpkg-buildpackage writes its results to the
# parent folder of the source, so the source (the checkout's files: tracked
# and new, not ignored) is copied to build/deb/src/flakeguard-V and built
# there.  Installs the missing build dependencies first (scripts/install-deps.sh).
# The tests do not run during the build: `make check` runs them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/install-deps.sh"

v=$(sed -n "s/^default_version = '\(.*\)'/\1/p" flakeguard.control)
[ -n "$v" ] || { echo "build-deb: no default_version in flakeguard.control" >&2; exit 1; }
deb_v=$(sed -n '1s/^flakeguard (\([^)]*\)).*/\1/p' debian/changelog)
if [ "$deb_v" != "$v-1" ]; then
	echo "build-deb: debian/changelog names $deb_v, flakeguard.control $v: add an entry for $v-1 (dch -v $v-1)" >&2
	exit 1
fi

out=$ROOT/build/deb
src=$out/src/flakeguard-$v
rm -rf "$out"
mkdir -p "$src"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar -cf - --null -T - | tar -xf - -C "$src"
else
	tar -cf - --exclude=./build --exclude=./.demo . | tar -xf - -C "$src"
fi

log=$out/build.log
echo "build-deb: building $v-1 in ${src#"$ROOT"/} (log: ${log#"$ROOT"/})"
if ! (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=${JOBS:-2}" dpkg-buildpackage -b -us -uc) >"$log" 2>&1; then
	tail -n 60 "$log" >&2
	echo "build-deb: dpkg-buildpackage failed (log: $log)" >&2
	exit 1
fi
# the debug symbols (NAME-dbgsym) apart, so that build/deb/*.deb is the two packages
mkdir -p "$out/debug"
mv "$out"/src/*-dbgsym_*.*deb "$out/debug/" 2>/dev/null || true
mv "$out"/src/*.deb "$out"/src/*.buildinfo "$out"/src/*.changes "$out"/
rm -rf "$out/src"
ls -l "$out"/*.deb | awk '{ printf "build-deb: %s (%d bytes)\n", $NF, $5 }' | sed "s|$ROOT/||"
