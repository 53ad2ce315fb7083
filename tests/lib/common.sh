# Shared shell helpers of the test tiers, benchmarks and demo (sourced, not run).
#
# PostgreSQL refuses to run as root.  When we are root, servers and clients
# run as the unprivileged service user $FG_USER (default flakeguard, created
# when first needed); otherwise as ourselves.  Servers listen on a Unix socket
# in their scratch folder and on 127.0.0.1 only, and are stopped by whoever
# started them.
#
# Every entry point (make demo, make check, make bench) calls fg_prepare
# first and assumes nothing before it: not a package, not the service user,
# not a build.  Whatever hands a folder to the service user does it through
# fg_own, which creates the user when it is missing.

FG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FG_USER=${FG_USER:-flakeguard}
# empty on a machine without PostgreSQL's packages: fg_prepare finds it once they are in
PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}

# fg_prepare: install the missing packages, then find PostgreSQL's programs
# (exported as PG_BINDIR for the scripts the caller runs).
fg_prepare() {
	"$FG_ROOT/scripts/install-deps.sh" || return 1
	PG_BINDIR=$(pg_config --bindir 2>/dev/null)
	if [ ! -x "$PG_BINDIR/initdb" ]; then
		echo "no initdb in '$PG_BINDIR' (pg_config --bindir): is postgresql-15 installed?" >&2
		return 1
	fi
	export PG_BINDIR FG_USER
}

# fg_user_ensure: when we are root, create the service user unless it exists.
fg_user_ensure() {
	[ "$(id -u)" -eq 0 ] || return 0
	id "$FG_USER" >/dev/null 2>&1 && return 0
	useradd --system --no-create-home --shell /usr/sbin/nologin "$FG_USER" ||
		id "$FG_USER" >/dev/null 2>&1 # another script made it meanwhile
}

# fg_own PATH...: hand PATHs (recursively) to the service user when we are root.
fg_own() {
	[ "$(id -u)" -eq 0 ] || return 0
	fg_user_ensure && chown -R "$FG_USER" "$@"
}

# as_user CMD...: run CMD as the service user when we are root, from / when
# the service user may not enter the current folder (a checkout in /root):
# CMD's paths are absolute there.
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		fg_user_ensure || return 1
		if [ "${FG_USER_CHECKED:-}" != "$FG_USER:$PWD" ]; then
			FG_USER_CHECKED=$FG_USER:$PWD
			runuser -u "$FG_USER" -- test -x "$PWD" 2>/dev/null && FG_USER_ENTERS=1 || FG_USER_ENTERS=0
		fi
		if [ "$FG_USER_ENTERS" = 0 ]; then
			(cd / && runuser -u "$FG_USER" -- "$@")
		else
			runuser -u "$FG_USER" -- "$@"
		fi
	else
		"$@"
	fi
}

# as_root CMD...: run CMD as root (ourselves, or through sudo without a password).
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	else
		sudo "$@"
	fi
}

# extension_install: build the extension with PGXS and install it.
extension_install() {
	make -C "$FG_ROOT" -s -j2 && as_root make -C "$FG_ROOT" -s install
}

# scratch_dir NAME: a fresh folder the service user owns.
scratch_dir() {
	local dir
	dir=$(mktemp -d "${TMPDIR:-/tmp}/flakeguard-$1.XXXXXX")
	fg_own "$dir"
	chmod 755 "$dir"
	echo "$dir"
}

# free_port: a TCP port nobody listens on (best effort), below the kernel's
# ephemeral range (32768 and up), so no outgoing connection can take it.
free_port() {
	local port
	for _ in $(seq 1 50); do
		port=$((20000 + RANDOM % 12000))
		if ! (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	echo 25432
}

# pg_start DIR: initdb in DIR/data and start a server on DIR's socket and
# 127.0.0.1:$PGPORT.  Exports PGHOST, PGPORT, PGDATABASE, PGUSER.
pg_start() {
	local dir=$1
	export PGPORT
	PGPORT=$(free_port)
	export PGHOST=$dir PGDATABASE=postgres
	as_user "$PG_BINDIR/initdb" -D "$dir/data" -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log"; return 1; }
	PGUSER=$(as_user id -un)
	export PGUSER
	as_user "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $dir -c fsync=off -c shared_buffers=256MB" start >/dev/null ||
		{ cat "$dir/server.log"; return 1; }
}

# pg_stop DIR: stop the server started by pg_start DIR.
pg_stop() {
	as_user "$PG_BINDIR/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}

# psql_as_user ARGS...: psql against the current PGHOST/PGPORT, quiet, stop on error.
psql_as_user() {
	as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGDATABASE="$PGDATABASE" PGUSER="$PGUSER" \
		"$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}

# redis_server_start DIR [ARGS...]: redis-server on 127.0.0.1:$REDIS_PORT
# (a free port when unset) with its files in DIR, as the unprivileged user.
# Exports REDIS_PORT and FLAKEGUARD_REDIS.
redis_server_start() {
	local dir=$1 try fixed=${REDIS_PORT:-}
	shift
	mkdir -p "$dir"
	fg_own "$dir"
	for try in 1 2 3 4 5; do
		export REDIS_PORT=${fixed:-$(free_port)}
		export FLAKEGUARD_REDIS=redis://127.0.0.1:$REDIS_PORT
		rm -f "$dir/redis.pid"
		as_user redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
			--pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save '' "$@" >/dev/null || return 1
		for _ in $(seq 1 100); do
			redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && [ -s "$dir/redis.pid" ] && return 0
			grep -q 'aborting' "$dir/redis.log" 2>/dev/null && break
			sleep 0.1
		done
		# the port was taken between free_port and the bind: another one, unless it was given
		[ -z "$fixed" ] || break
		: >"$dir/redis.log"
	done
	cat "$dir/redis.log" >&2
	return 1
}

# redis_server_stop DIR: stop the server started by redis_server_start DIR.
redis_server_stop() {
	local pid
	pid=$(cat "$1/redis.pid" 2>/dev/null) || return 0
	redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
}
