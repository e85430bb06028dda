# shellcheck shell=bash
# Shared by scripts/test.sh and scripts/run.sh (sourced, not run): makes sure the project's
# virtualenv .venv exists and has the project installed (editable, with the `test` extra).
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

# ensure_venv: creates .venv if needed and (re)installs the project when pyproject.toml changed.
ensure_venv() {
    : "${REPO_ROOT:?REPO_ROOT must be set}"
    local venv="$REPO_ROOT/.venv"
    VENV_PY="$venv/bin/python"

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
    stamp="$venv/.installed-$(sha256_of "$REPO_ROOT/pyproject.toml")"
    if [ ! -e "$stamp" ]; then
        log "installing the project with its test and bench dependencies into .venv (pip install -e '.[test,bench]')"
        local pip_log="$venv/pip-install.log"
        if ! (cd "$REPO_ROOT" && "$VENV_PY" -m pip install --quiet --disable-pip-version-check \
                -e '.[test,bench]') >"$pip_log" 2>&1; then
            tail -n 40 "$pip_log" >&2
            die "pip install -e '.[test,bench]' failed (full output: $pip_log)"
        fi
        rm -f "$venv"/.installed-*
        touch "$stamp"
    fi
}
