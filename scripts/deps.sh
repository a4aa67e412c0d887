#!/usr/bin/env bash
# Install the Debian packages the Dispecer test suite needs, idempotently.
#
#   scripts/deps.sh
#
# - mosquitto        : the tests start their own broker (on their own ports)
# - mosquitto-clients : mosquitto_pub, a client nobody here wrote, in the tests
# - chromium, chromium-driver : browser tests of the dashboards (WebDriver)
# - debootstrap      : scripts/timescaledb.sh builds a Debian trixie root with
#                      PostgreSQL 17 + TimescaleDB (bookworm has no TimescaleDB)
# - libxml2-utils    : xmllint, used to validate XML fixtures/output (every CAP 1.2 document
#                      Dispecer writes, against tests/e2e/schemas/CAP-v1.2.xsd)
# - curl, ca-certificates : HTTP checks in scripts and tests
#
# Fast path: when every package is already installed this only reads the dpkg
# database (well under a second) and never touches the network or the apt lock.
#
# After installing, the mosquitto *system service* is stopped and disabled:
# Debian's package enables it on port 1883, but the tests run their own
# brokers and a system one would only get in the way (and hold 1883).
#
# All output goes to stderr so callers can use this script's stdout freely.
set -euo pipefail

log() { printf 'deps.sh: %s\n' "$*" >&2; }
die() { printf 'deps.sh: ERROR: %s\n' "$*" >&2; exit 1; }

PACKAGES=(
  mosquitto
  mosquitto-clients
  chromium
  chromium-driver
  debootstrap
  libxml2-utils
  curl
  ca-certificates
)

[[ $(id -u) -eq 0 ]] || die "must run as root (installs Debian packages)"
command -v dpkg >/dev/null || die "dpkg not found: this script needs a Debian system"

# A package counts as present only if dpkg says "install ok installed" (a
# removed package whose config files remain also answers `dpkg -s`, with
# Status "deinstall ok config-files", so the exit code alone is not enough).
is_installed() {
  dpkg -s "$1" 2>/dev/null | grep -Eq '^Status: [a-z]+ ok installed$'
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} > 0)); then
  log "installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Another apt/dpkg run may hold the lock (e.g. a background install); wait
  # for it instead of failing straight away.
  apt_opts=(-o DPkg::Lock::Timeout=900 -o Acquire::Retries=3)
  apt-get "${apt_opts[@]}" update >&2 ||
    die "apt-get update failed (is a Debian mirror reachable?)"
  apt-get "${apt_opts[@]}" install -y "${missing[@]}" >&2 ||
    die "apt-get install failed for: ${missing[*]}"
  for pkg in "${missing[@]}"; do
    is_installed "$pkg" || die "package $pkg still not installed after apt-get install"
  done
  log "packages installed"
fi

# --- keep the system mosquitto service out of the way -----------------------
# Each check below is cheap and only acts when something is actually enabled or
# running, so re-runs stay fast and quiet.
systemd_running=false
[[ -d /run/systemd/system ]] && systemd_running=true

if command -v systemctl >/dev/null 2>&1 && [[ -e /lib/systemd/system/mosquitto.service ]]; then
  # `systemctl is-enabled` / `disable` also work when systemd is not PID 1
  # (containers), and then disable the SysV rc links as well.
  if [[ $(systemctl is-enabled mosquitto.service 2>/dev/null || true) == enabled ]]; then
    log "disabling the mosquitto system service (tests run their own brokers)"
    systemctl disable mosquitto.service >/dev/null 2>&1 ||
      log "warning: 'systemctl disable mosquitto' failed"
  fi
  if $systemd_running && systemctl is-active --quiet mosquitto.service; then
    log "stopping the mosquitto system service"
    systemctl stop mosquitto.service || log "warning: 'systemctl stop mosquitto' failed"
  fi
elif compgen -G '/etc/rc[2-5].d/S*mosquitto' >/dev/null && command -v update-rc.d >/dev/null; then
  log "disabling the mosquitto init script (tests run their own brokers)"
  update-rc.d mosquitto disable >/dev/null 2>&1 || log "warning: 'update-rc.d mosquitto disable' failed"
fi

# Without systemd the package's init script may have started the daemon (unless
# a policy-rc.d forbade it, as in most containers); its pid file says so.
pidfile=/run/mosquitto/mosquitto.pid
if ! $systemd_running && [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  log "stopping the mosquitto system daemon (pid $(cat "$pidfile"))"
  if [[ -x /etc/init.d/mosquitto ]]; then
    /etc/init.d/mosquitto stop >&2 || log "warning: /etc/init.d/mosquitto stop failed"
  else
    kill "$(cat "$pidfile")" || true
  fi
fi

# Only a warning: something else (maybe on purpose) may own 1883, and the
# tests do not use that port anyway.
if command -v ss >/dev/null 2>&1 && [[ -n $(ss -Htln 'sport = :1883' 2>/dev/null) ]]; then
  log "warning: something is still listening on port 1883"
fi

exit 0
