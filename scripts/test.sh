#!/usr/bin/env bash
# Runs the test-suite: installs what the tests need on a fresh Debian machine (PostgreSQL,
# mosquitto and Redis binaries, the tests start their own throwaway servers; Chromium for the
# sandbox's browser tests), prepares .venv,
# then runs pytest with the given arguments, e.g. `scripts/test.sh tests/test_x.py -q`.
#
# Set SKIP_APT=1 to never call apt-get. TEST_POSTGRES_URL / TEST_MQTT_URL / TEST_REDIS_URL
# point the tests at existing servers; the matching binary is then not needed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
# shellcheck source=scripts/_venv.sh
. "$REPO_ROOT/scripts/_venv.sh"

have_initdb() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1; }
have_mosquitto() { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; }
have_redis() { command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; }

missing=()
if [ -z "${TEST_POSTGRES_URL:-}" ] && ! have_initdb; then missing+=(initdb); fi
if [ -z "${TEST_MQTT_URL:-}" ] && ! have_mosquitto; then missing+=(mosquitto); fi
if [ -z "${TEST_REDIS_URL:-}" ] && ! have_redis; then missing+=(redis-server); fi

packages=()
if [ "${#missing[@]}" -gt 0 ]; then
    packages+=(postgresql mosquitto redis-server)
fi
if ! find_python >/dev/null && ! [ -x "$REPO_ROOT/.venv/bin/python" ]; then
    packages+=(python3 python3-venv)
fi

if [ "${#packages[@]}" -gt 0 ]; then
    if [ -n "${SKIP_APT:-}" ] || ! command -v apt-get >/dev/null 2>&1; then
        log "warning: missing ${missing[*]:-python3}; not installing (no apt-get or SKIP_APT set)"
    else
        sudo=()
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null 2>&1 || die "need root or sudo to apt-get install ${packages[*]}"
            if [ -t 0 ]; then sudo=(sudo); else sudo=(sudo -n); fi
        fi
        # Services whose package is new here: stopped after install (postinst may start them).
        new_services=()
        for svc in postgresql mosquitto redis-server; do
            if ! dpkg-query -W -f='${Status}' "$svc" 2>/dev/null | grep -q 'ok installed'; then
                new_services+=("$svc")
            fi
        done
        log "installing Debian packages: ${packages[*]} (missing: ${missing[*]:-python3})"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
        # The tests start their own servers: don't leave the packaged ones running.
        for svc in "${new_services[@]}"; do
            if [[ " ${packages[*]} " == *" $svc "* ]]; then
                "${sudo[@]}" service "$svc" stop >/dev/null 2>&1 || true
            fi
        done
    fi
fi

# The sandbox's browser tests drive Debian's Chromium; they are skipped (with the reason)
# only when it cannot be installed, so a failure here does not stop the run.
if ! [ -x /usr/bin/chromium ]; then
    if [ -n "${SKIP_APT:-}" ] || ! command -v apt-get >/dev/null 2>&1; then
        log "warning: no /usr/bin/chromium; not installing it (no apt-get or SKIP_APT set)"
    else
        sudo=()
        if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
            if [ -t 0 ]; then sudo=(sudo); else sudo=(sudo -n); fi
        fi
        log "installing Debian packages: chromium fonts-noto-color-emoji (browser tests)"
        if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends chromium fonts-noto-color-emoji; } >/dev/null 2>&1; then
            # in CI the browser test must run: a missing browser fails the run
            if [ -n "${CI:-}" ]; then die "could not install chromium (needed by the browser tests)"; fi
            log "warning: could not install chromium; the browser tests will be skipped"
        fi
    fi
fi

ensure_venv test

log "running pytest $*"
exec "$VENV_PY" -m pytest "$@"
