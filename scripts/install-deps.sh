#!/usr/bin/env bash
# Installs the Debian packages FlakeGuard needs to build, test, benchmark and
# run its demo.  Does nothing when they are all present; as root it runs
# apt-get, otherwise it uses sudo when it can and else says what is missing.
set -euo pipefail

packages=(
	g++ make cmake pkg-config clang libclang-rt-14-dev
	postgresql-15 postgresql-server-dev-15 postgresql-contrib libpq-dev
	libxml2-dev libxml2-utils
	libhiredis-dev libmicrohttpd-dev libsystemd-dev redis-server curl
	socat # a NOTIFY_SOCKET for the sidecar's readiness test (tests/integration/service.sh)
	iproute2 procps # ss, ps and pkill for the tests and CI: a minimal Debian has neither
	libboost-test-dev
	liblz4-dev libzstd-dev libkrb5-dev # to build Citus for the Citus tier (tests/citus/build.sh)
	debhelper dpkg-dev postgresql-server-dev-all # make deb (debian/control's Build-Depends)
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	sudo=(sudo)
else
	echo "install-deps: missing packages: ${missing[*]}; run as root or install them with apt-get" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged servers; FlakeGuard runs its own on loopback and never uses them.
