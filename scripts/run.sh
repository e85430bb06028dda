#!/usr/bin/env bash
# Runs the bot: prepares .venv (see scripts/_venv.sh), then `python -m bot` with the given
# arguments. Configuration comes from the environment / .env (see the README).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
# shellcheck source=scripts/_venv.sh
. "$REPO_ROOT/scripts/_venv.sh"

ensure_venv run  # the bot and its sandbox: no test or bench tools
mkdir -p "$REPO_ROOT/data"

log "starting the bot"
exec "$VENV_PY" -m bot "$@"
