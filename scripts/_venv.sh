# shellcheck shell=bash
# Shared by scripts/test.sh and scripts/run.sh (sourced, not run): makes sure the project's
# virtualenv .venv exists and has the locked dependencies (requirements/<lock>.txt, made
# by `make lock`) and the project itself (editable) installed.
#
# Needs REPO_ROOT set to the repository root. Environment knobs:
#   PYTHON=/path/to/python3   interpreter to create .venv with (must be >= 3.11)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# python_ok PY: PY runs and is Python >= 3.11 with venv + ensurepip (pip inside venvs).
python_ok() {
    "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

# find_python: prints a usable interpreter, or nothing.
find_python() {
    local py
    for py in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
        if command -v "$py" >/dev/null 2>&1 && python_ok "$py"; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        "$VENV_PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
    fi
}

# lock_stamp LOCK: the marker of LOCK's install; it changes with the lock file and pyproject.toml.
lock_stamp() {
    local lock_sum project_sum
    lock_sum="$(sha256_of "$REPO_ROOT/requirements/$1.txt")"
    project_sum="$(sha256_of "$REPO_ROOT/pyproject.toml")"
    printf '%s/.installed-%s-%s-%s' "$REPO_ROOT/.venv" "$1" "${lock_sum:0:16}" "${project_sum:0:16}"
}

# ensure_venv [LOCK]: creates .venv if needed and installs requirements/LOCK.txt (default:
# test, everything; run: the bot and its sandbox only) when it or pyproject.toml changed.
# test.txt holds every pin of run.txt, so a current test install serves a run too.
ensure_venv() {
    : "${REPO_ROOT:?REPO_ROOT must be set}"
    local lock="${1:-test}"
    local venv="$REPO_ROOT/.venv"
    local lock_file="$REPO_ROOT/requirements/$lock.txt"
    VENV_PY="$venv/bin/python"
    [ -f "$lock_file" ] || die "missing $lock_file (make lock makes it)"

    if [ -x "$VENV_PY" ] && ! "$VENV_PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
        log "existing .venv is broken or older than Python 3.11: recreating it"
        rm -rf "$venv"
    fi
    if [ ! -x "$VENV_PY" ]; then
        local py
        py="$(find_python)" || die "need Python >= 3.11 with venv (Debian: apt-get install python3 python3-venv)"
        log "creating .venv with $py ($("$py" -c 'import platform; print(platform.python_version())'))"
        "$py" -m venv "$venv" || die "could not create .venv (Debian: apt-get install python3-venv)"
    fi

    local stamp
    stamp="$(lock_stamp "$lock")"
    if [ -e "$stamp" ] || { [ "$lock" = run ] && [ -e "$(lock_stamp test)" ]; }; then
        return 0
    fi
    log "installing the locked dependencies (requirements/$lock.txt) and the project into .venv"
    local pip_log="$venv/pip-install.log"
    # --require-hashes: every package is the file the lock names, or the install fails.
    # The project itself goes in after, with no dependencies of its own to resolve and
    # the locked setuptools as its build backend.
    if ! (cd "$REPO_ROOT" && "$VENV_PY" -m pip install --disable-pip-version-check \
            --require-hashes -r "requirements/$lock.txt" &&
            "$VENV_PY" -m pip install --disable-pip-version-check --no-deps \
            --no-build-isolation -e .) >"$pip_log" 2>&1; then
        tail -n 40 "$pip_log" >&2
        die "installing requirements/$lock.txt failed (full output: $pip_log)"
    fi
    rm -f "$venv"/.installed-"$lock"-*
    touch "$stamp"
}
