#!/usr/bin/env bash
# A real PostgreSQL 17 + TimescaleDB server for the Dispecer test suite.
#
#   scripts/timescaledb.sh [start|stop|url|status]      (default: start)
#
#   start   build/reuse the server and start it; prints the URL on stdout
#   stop    stop the server (the data directory is kept)
#   url     print the URL (postgres://postgres:dispecer@127.0.0.1:PORT/postgres)
#   status  exit 0 if the server answers on its port, 1 otherwise
#
# Environment:
#   DISPECER_TEST_PG_PORT  TCP port on 127.0.0.1 (default 55432; never 5432)
#   DISPECER_CACHE_DIR     cache directory (default /var/cache/dispecer)
#
# PostGIS (postgresql-17-postgis-3 and its -scripts, for the jurisdiction-lookup benchmark's
# ST_Contains limit) is installed into the root with apt-get after debootstrap,
# and into an existing cached root the first time `start` finds it missing, so
# an old root is upgraded in place (its data directory kept) rather than rebuilt.
#
# Why a chroot: Debian bookworm (the host) packages no TimescaleDB, and the
# machines reach only Debian's archive (no Timescale apt repo). Debian trixie ships
# postgresql-17 and postgresql-17-timescaledb, so we debootstrap a minimal
# trixie root containing both (~1 min, ~600 MB, cached OUTSIDE the repo under
# $DISPECER_CACHE_DIR/trixie-pg17) and run postgres inside it with chroot.
# The server listens on 127.0.0.1 TCP, so host clients (psql 15, sqlx, ...)
# simply connect to the port.
#
# Nothing is mounted into the chroot: postgres needs neither /proc nor a
# writable /dev/shm once dynamic_shared_memory_type=sysv and huge_pages=off are
# set (the root's /dev/shm is a plain root-owned directory, so POSIX shared
# memory would fail). Hence `stop` has nothing to unmount; it still unmounts
# anything found under the root in case someone mounted things by hand.
#
# Progress and errors go to stderr; stdout carries only the URL.
set -euo pipefail

# Nothing here reads or writes the repository (the cache lives outside it),
# so the script works from any cwd without locating the repo root.

PORT=${DISPECER_TEST_PG_PORT:-55432}
CACHE_DIR=${DISPECER_CACHE_DIR:-/var/cache/dispecer}
ROOTFS=$CACHE_DIR/trixie-pg17
SUITE=trixie
MIRROR=http://deb.debian.org/debian
ROOT_PACKAGES=postgresql-17,postgresql-17-timescaledb
# Bump when the recipe of the root changes, so an old cached root is rebuilt.
ROOT_VERSION="v1 $SUITE minbase $ROOT_PACKAGES"
MARKER=$ROOTFS/.dispecer-root-complete
# Installed with apt-get into a complete root when missing (no rebuild, data kept).
EXTRA_PACKAGES=(postgresql-17-postgis-3 postgresql-17-postgis-3-scripts)
POSTGIS_CONTROL=/usr/share/postgresql/17/extension/postgis.control  # inside the root

PG_BIN=/usr/lib/postgresql/17/bin        # paths inside the chroot
PG_BASE=/var/lib/dispecer-pg
PG_DATA=$PG_BASE/data
PG_LOG=$PG_BASE/server.log
PG_SOCKET_DIR=/var/run/postgresql
PG_PASSWORD=dispecer

log() { printf 'timescaledb.sh: %s\n' "$*" >&2; }
die() { printf 'timescaledb.sh: ERROR: %s\n' "$*" >&2; exit 1; }

if ! [[ $PORT =~ ^[0-9]{1,5}$ ]] || ((10#$PORT < 1 || 10#$PORT > 65535)); then
  die "DISPECER_TEST_PG_PORT must be a TCP port number, got '$PORT'"
fi
PORT=$((10#$PORT)) # normalise e.g. "055432"
[[ $PORT != 5432 ]] ||
  die "refusing port 5432 (a system PostgreSQL may own it); pick another DISPECER_TEST_PG_PORT"

URL="postgres://postgres:${PG_PASSWORD}@127.0.0.1:${PORT}/postgres"

root_complete() { [[ -f $MARKER && $(cat "$MARKER" 2>/dev/null) == "$ROOT_VERSION" ]]; }

# Are the EXTRA_PACKAGES in the root? (PostGIS: its extension control file, an
# absolute symlink through the root's /etc/alternatives, so links are followed
# inside the root by hand: no chroot, hence no root needed for the fast path)
root_has_extras() {
  local f=$ROOTFS$POSTGIS_CONTROL t i
  for i in 1 2 3 4 5; do
    [[ -L $f ]] || break
    t=$(readlink "$f")
    if [[ $t == /* ]]; then f=$ROOTFS$t; else f=$(dirname "$f")/$t; fi
  done
  [[ -f $f ]]
}

# Install EXTRA_PACKAGES into the complete root (idempotent). A policy-rc.d
# keeps maintainer scripts from starting services inside the chroot; the
# running server needs no restart (CREATE EXTENSION loads the library).
install_extras() {
  root_has_extras && return 0
  log "installing ${EXTRA_PACKAGES[*]} into $ROOTFS (log: $CACHE_DIR/trixie-pg17-extras.log)"
  printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
  chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
  if ! env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
      chroot "$ROOTFS" sh -c "apt-get update && apt-get install -y --no-install-recommends ${EXTRA_PACKAGES[*]}" \
      >"$CACHE_DIR/trixie-pg17-extras.log" 2>&1; then
    tail -n 20 "$CACHE_DIR/trixie-pg17-extras.log" >&2 || true
    die "could not install ${EXTRA_PACKAGES[*]} into the root (log: $CACHE_DIR/trixie-pg17-extras.log)"
  fi
  rm -f "$ROOTFS"/var/cache/apt/archives/*.deb
  root_has_extras || die "${EXTRA_PACKAGES[*]} installed but $POSTGIS_CONTROL is missing"
}

# Run a shell command as the postgres user inside the root, with a clean
# environment (so host PG* variables such as PGPORT/PGHOST cannot leak in).
in_root_as_postgres() {
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 LC_ALL=C.UTF-8 \
    chroot "$ROOTFS" su postgres -s /bin/sh -c "$1"
}

# Like in_root_as_postgres, but with every file descriptor above 2 closed
# first. Used to start the postmaster, which outlives this script and would
# otherwise inherit (and hold forever) our lock file (fd 9, so every later
# start/stop would wait for the lock) and any pipe a caller passed down (so a
# caller waiting for EOF on it, e.g. CI or `eval "$(...)"`, would hang).
in_root_as_postgres_detached() {
  (
    for fd in "/proc/$BASHPID/fd"/*; do
      fd=${fd##*/}
      if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-"; fi
    done
    in_root_as_postgres "$1"
  )
}

# Does a PostgreSQL server answer on 127.0.0.1:$PORT? Uses the root's
# pg_isready, so the host needs no PostgreSQL client; before the root exists
# fall back to the host's pg_isready, then to a bare TCP connect.
answers() {
  if root_complete; then
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$ROOTFS" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 3
  elif command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p "$PORT" -t 3
  else
    port_busy
  fi
}

# Is anything at all listening on 127.0.0.1:$PORT? (bash's /dev/tcp, so it
# cannot be confused by a missing tool the way a failing pg_isready could)
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

# Is the postmaster of OUR data directory alive? (postmaster.pid line 1)
our_server_running() {
  local pidfile=$ROOTFS$PG_DATA/postmaster.pid pid
  [[ -f $pidfile ]] || return 1
  pid=$(head -n1 "$pidfile" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# Unmount anything mounted below $1 (deepest first). Nothing in this script
# mounts, but debootstrap mounts /proc and /sys in its target while it runs,
# and a killed debootstrap can leave them behind.
umount_below() {
  local dir mnts
  dir=$(realpath -m -- "$1")
  mnts=$(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
  [[ -z $mnts ]] && return 0
  while IFS= read -r m; do
    log "unmounting $m"
    umount "$m" 2>/dev/null || umount -l "$m" || log "warning: could not unmount $m"
  done <<<"$mnts"
}

# Serialise start/stop (and the root build) across concurrent callers, e.g.
# several test binaries or CI steps provisioning at once.
take_lock() {
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.trixie-pg17.lock"
  if ! flock -n 9; then
    log "waiting for another timescaledb.sh (lock $CACHE_DIR/.trixie-pg17.lock)"
    flock -w 900 9 || die "timed out waiting for the lock"
  fi
}

build_root() {
  command -v debootstrap >/dev/null ||
    die "debootstrap is not installed; run scripts/deps.sh first"
  [[ -e /usr/share/debootstrap/scripts/$SUITE ]] ||
    die "this debootstrap does not know '$SUITE'; upgrade debootstrap"

  # Leftovers of an interrupted build (we hold the lock, so none is live).
  local old
  for old in "$CACHE_DIR"/trixie-pg17.tmp.*; do
    [[ -e $old ]] || continue
    log "removing leftover partial root $old"
    umount_below "$old"
    rm -rf --one-file-system -- "$old"
  done
  # A root without a (current) marker is incomplete or from an old recipe.
  if [[ -e $ROOTFS ]]; then
    log "discarding incomplete or outdated root $ROOTFS"
    umount_below "$ROOTFS"
    rm -rf --one-file-system -- "$ROOTFS"
  fi

  local tmp started
  tmp=$(mktemp -d "$CACHE_DIR/trixie-pg17.tmp.XXXXXX")
  # mktemp makes it 0700; as the chroot's / it must be traversable by the
  # postgres user.
  chmod 755 "$tmp"
  # Build into a temp dir and rename only on success, so a half-built root
  # is never mistaken for a good one.
  trap 'umount_below "'"$tmp"'"; rm -rf --one-file-system -- "'"$tmp"'"' EXIT
  started=$SECONDS
  log "building Debian $SUITE root with $ROOT_PACKAGES in $tmp (about a minute; log: $tmp.log)"
  if ! debootstrap --variant=minbase --include="$ROOT_PACKAGES" \
      "$SUITE" "$tmp" "$MIRROR" >"$tmp.log" 2>&1; then
    tail -n 20 "$tmp.log" >&2 || true
    die "debootstrap failed (full log: $tmp.log)"
  fi
  [[ -x $tmp$PG_BIN/postgres && -n $(compgen -G "$tmp/usr/lib/postgresql/17/lib/timescaledb*.so") ]] ||
    die "debootstrap finished but postgres/timescaledb are missing from $tmp"

  # The downloaded .debs are not needed any more (~110 MB).
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  # postgresql-common's postinst created a default cluster 17/main; it is
  # never started (nothing runs init scripts in the chroot) and we use our
  # own data directory, so drop it to avoid confusion.
  rm -rf "$tmp/etc/postgresql/17/main" "$tmp/var/lib/postgresql/17/main"

  printf '%s\n' "$ROOT_VERSION" >"$tmp/.dispecer-root-complete"
  umount_below "$tmp"
  mv -T -- "$tmp" "$ROOTFS"
  rm -f "$tmp.log"
  trap - EXIT
  log "root ready in $((SECONDS - started)) s: $ROOTFS"
}

init_data_dir() {
  # initdb into a temp dir and rename on success, so a failed initdb is
  # never reused.
  local init=$PG_DATA.init pwfile=$PG_BASE/.pwfile
  log "initialising data directory $ROOTFS$PG_DATA"
  rm -rf -- "$ROOTFS$init"
  mkdir -p "$ROOTFS$PG_BASE"
  chroot "$ROOTFS" chown postgres:postgres "$PG_BASE"
  chmod 700 "$ROOTFS$PG_BASE"
  # The password goes through a file readable only by postgres, not argv.
  (umask 077 && printf '%s\n' "$PG_PASSWORD" >"$ROOTFS$pwfile")
  chroot "$ROOTFS" chown postgres:postgres "$pwfile"
  # initdb's chatter (which names the temporary directory) goes to a log.
  if ! in_root_as_postgres "$PG_BIN/initdb -D $init -U postgres --pwfile=$pwfile \
        --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8" \
        >"$ROOTFS$PG_BASE/initdb.log" 2>&1; then
    rm -f -- "$ROOTFS$pwfile"
    tail -n 20 "$ROOTFS$PG_BASE/initdb.log" >&2 || true
    die "initdb failed (log: $ROOTFS$PG_BASE/initdb.log)"
  fi
  rm -f -- "$ROOTFS$pwfile"
  # Our settings live in an included file that `start` rewrites every time
  # (so a changed DISPECER_TEST_PG_PORT takes effect); postgresql.auto.conf
  # is left to ALTER SYSTEM.
  printf "\n# Dispecer test settings (scripts/timescaledb.sh rewrites this file)\ninclude 'dispecer.conf'\n" \
    >>"$ROOTFS$init/postgresql.conf"
  mv -T -- "$ROOTFS$init" "$ROOTFS$PG_DATA"
}

write_config() {
  local d=$ROOTFS$PG_DATA
  cat >"$d/dispecer.conf" <<EOF
# Written by scripts/timescaledb.sh on each start; edits are lost.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 200
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
password_encryption = 'scram-sha-256'
# No /dev/shm tmpfs in the chroot (and nothing mounted): use SysV shared
# memory for parallel query etc., and don't probe /proc for huge pages.
dynamic_shared_memory_type = sysv
huge_pages = off
# fsync stays on (the default): the tests should see real durability.
fsync = on
logging_collector = off
EOF
  cat >"$d/pg_hba.conf" <<'EOF'
# Written by scripts/timescaledb.sh on each start; edits are lost.
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             postgres                                peer
host    all             all             127.0.0.1/32            scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
EOF
  chroot "$ROOTFS" chown postgres:postgres "$PG_DATA/dispecer.conf" "$PG_DATA/pg_hba.conf"
  chmod 600 "$d/dispecer.conf" "$d/pg_hba.conf"
}

cmd_start() {
  # Fast path without the lock: our server is already up, with everything installed.
  if root_complete && root_has_extras && our_server_running && answers; then
    log "already running on 127.0.0.1:$PORT"
    printf '%s\n' "$URL"
    return 0
  fi

  [[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap and chroot need it)"
  take_lock
  root_complete || build_root
  install_extras
  if our_server_running && answers; then
    log "already running on 127.0.0.1:$PORT"
    printf '%s\n' "$URL"
    return 0
  fi

  if our_server_running; then
    # Running but not answering on $PORT: probably started with another port.
    log "server running but not answering on $PORT; restarting it"
    in_root_as_postgres "$PG_BIN/pg_ctl -D $PG_DATA -m fast -w -t 60 stop" >&2 ||
      die "could not stop the running server"
  fi
  if port_busy; then
    die "something else already listens on 127.0.0.1:$PORT; stop it or set DISPECER_TEST_PG_PORT"
  fi

  [[ -f $ROOTFS$PG_DATA/PG_VERSION ]] || init_data_dir
  write_config
  mkdir -p "$ROOTFS$PG_SOCKET_DIR"
  chroot "$ROOTFS" chown postgres:postgres "$PG_SOCKET_DIR"

  log "starting PostgreSQL 17 + TimescaleDB on 127.0.0.1:$PORT (log: $ROOTFS$PG_LOG)"
  # pg_ctl puts the postmaster in its own session (setsid), so it outlives
  # this script and the caller's process group; pg_ctl also points the
  # postmaster's stdin/stdout/stderr at /dev/null and the log file.
  if ! in_root_as_postgres_detached "$PG_BIN/pg_ctl -D $PG_DATA -l $PG_LOG -w -t 120 start" </dev/null >&2; then
    tail -n 30 "$ROOTFS$PG_LOG" >&2 || true
    die "PostgreSQL failed to start (log: $ROOTFS$PG_LOG)"
  fi
  answers || die "PostgreSQL started but does not answer on 127.0.0.1:$PORT"
  printf '%s\n' "$URL"
}

cmd_stop() {
  [[ $(id -u) -eq 0 ]] || die "must run as root"
  if ! root_complete; then
    log "no root at $ROOTFS; nothing to stop"
    return 0
  fi
  take_lock
  if our_server_running; then
    log "stopping PostgreSQL"
    in_root_as_postgres "$PG_BIN/pg_ctl -D $PG_DATA -m fast -w -t 60 stop" >&2 ||
      die "pg_ctl stop failed (log: $ROOTFS$PG_LOG)"
  else
    log "not running"
  fi
  umount_below "$ROOTFS"
}

case ${1:-start} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  url) printf '%s\n' "$URL" ;;
  status)
    if answers; then
      log "answering on 127.0.0.1:$PORT"
      exit 0
    else
      log "not answering on 127.0.0.1:$PORT"
      exit 1
    fi
    ;;
  -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2 ;;
  *) die "unknown command '$1' (use start, stop, url or status)" ;;
esac
