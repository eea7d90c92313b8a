# scripts/lib/postgres.sh: a throwaway PostgreSQL for the tests. Sourced by
# scripts/test; bash only.
#
#   pg_start  initdb into a new temporary directory, in /dev/shm when it has
#             4 GiB free (not with PG_DURABLE=1), else in $TMPDIR or /tmp
#             (as the postgres OS user when run as root: initdb refuses root;
#             then /tmp if that user cannot enter $TMPDIR, but for
#             PG_DURABLE=1, which refuses), start it with pg_ctl
#             on a free 127.0.0.1 port, its unix socket in that directory,
#             and export SCEPTER_TEST_POSTGRES_URL (superuser postgres,
#             trust authentication, reachable from 127.0.0.1 only). Does
#             nothing when this shell started one already.
#   pg_stop   stop it (pg_ctl stop -m immediate: nothing in it is kept) and
#             remove the directory. Safe to call again, and when nothing was
#             started; meant for a trap on EXIT.
#
# The programs come from $SCEPTER_TEST_POSTGRES_BIN, else PATH, else the
# newest /usr/lib/postgresql/VERSION/bin (Debian's postgresql package).

PG_TMP=""
PG_AS=()

pg_bindir() {
	local d
	if [ -n "${SCEPTER_TEST_POSTGRES_BIN:-}" ]; then
		echo "$SCEPTER_TEST_POSTGRES_BIN"
		return 0
	fi
	if d=$(command -v initdb 2>/dev/null) && [ -x "$(dirname "$d")/pg_ctl" ]; then
		dirname "$d"
		return 0
	fi
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4n | tail -n 1)
	if [ -n "$d" ] && [ -x "$d/initdb" ]; then
		echo "$d"
		return 0
	fi
	echo "PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql)" >&2
	return 1
}

# pg_port_free PORT: nothing answers on 127.0.0.1:PORT.
pg_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_start() {
	if [ -n "$PG_TMP" ] && [ -d "$PG_TMP" ]; then
		echo "throwaway PostgreSQL already running: $SCEPTER_TEST_POSTGRES_URL"
		return 0
	fi
	local bin port attempt
	bin=$(pg_bindir) || return 1
	PG_AS=()
	# In memory when /dev/shm has room: the tests create and drop a
	# database each, a thousand files apiece, and on ext4 finding free
	# inodes among so many just deleted took most of the server's CPU
	# (about 4 times that on tmpfs). Nothing here must outlive the server.
	local parent="${TMPDIR:-/tmp}"
	# Run as root, the server runs as the postgres OS user, who must be
	# able to enter the parent. A TMPDIR it cannot enter (under /root,
	# say) gives way to /tmp, but not for a benchmark (PG_DURABLE=1): its
	# fsyncs are measured on the disk TMPDIR names.
	if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$parent" 2>/dev/null; then
		if [ "${PG_DURABLE:-0}" = 1 ]; then
			echo "the postgres OS user cannot enter TMPDIR=$parent, where PostgreSQL's data must go: give a TMPDIR whose every directory it may enter (chmod o+x)" >&2
			return 1
		fi
		parent=/tmp
	fi
	# Never for a benchmark (PG_DURABLE=1): an fsync to memory costs
	# nothing, and its figures would not be a disk's.
	if [ "${PG_DURABLE:-0}" != 1 ] && [ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -ge 4194304 ] 2>/dev/null; then
		parent=/dev/shm
	fi
	# The postgres user must be able to enter the parent (checked above).
	PG_TMP=$(mktemp -d "$parent/scepter-pg.XXXXXX") || return 1
	if [ "$(id -u)" -eq 0 ]; then
		if ! id postgres >/dev/null 2>&1; then
			echo "running as root, PostgreSQL must run as the postgres OS user, which does not exist" >&2
			return 1
		fi
		PG_AS=(runuser -u postgres --)
		chown postgres: "$PG_TMP"
	fi
	chmod 700 "$PG_TMP"
	"${PG_AS[@]}" mkdir -m 700 "$PG_TMP/sock" || return 1
	if ! "${PG_AS[@]}" "$bin/initdb" -D "$PG_TMP/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$PG_TMP/initdb.log" 2>&1; then
		cat "$PG_TMP/initdb.log" >&2
		return 1
	fi
	for attempt in 1 2 3 4 5; do
		# Below the kernel's ephemeral range (32768 and up), where a
		# client connection could take the port between check and bind.
		port=$((10000 + RANDOM % 22000))
		pg_port_free "$port" || continue
		# fsync off: a throwaway server; a clean stop still keeps what
		# was committed, which is all the tests restart it for. A
		# benchmark sets PG_DURABLE=1: every commit fsync'd, as in
		# production.
		local durability="-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
		if [ "${PG_DURABLE:-0}" = 1 ]; then
			durability="-c fsync=on -c full_page_writes=on -c synchronous_commit=on"
		fi
		if "${PG_AS[@]}" "$bin/pg_ctl" start -w -t 60 -D "$PG_TMP/data" -l "$PG_TMP/server.log" \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TMP/sock $durability -c max_connections=400 -c shared_buffers=128MB -c max_wal_size=256MB" >/dev/null; then
			export SCEPTER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable"
			echo "throwaway PostgreSQL $("$bin/postgres" --version | awk '{print $3}') in $PG_TMP: $SCEPTER_TEST_POSTGRES_URL"
			return 0
		fi
		tail -n 20 "$PG_TMP/server.log" >&2 || true
	done
	echo "could not start PostgreSQL on a free port" >&2
	return 1
}

pg_stop() {
	if [ -z "$PG_TMP" ]; then
		return 0
	fi
	local bin
	if [ -f "$PG_TMP/data/postmaster.pid" ] && bin=$(pg_bindir 2>/dev/null); then
		"${PG_AS[@]}" "$bin/pg_ctl" stop -w -t 30 -m immediate -D "$PG_TMP/data" >/dev/null 2>&1 || true
	fi
	rm -rf "$PG_TMP"
	PG_TMP=""
	unset SCEPTER_TEST_POSTGRES_URL
}
