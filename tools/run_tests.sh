#!/usr/bin/env bash
# The test command: set up the environment (idempotent) and run the default test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -m slow` or `-k resume`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/tools/setup_env.sh"
venv="${MASKDINO_VENV:-$repo/.venv}"
cd "$repo"
exec "$venv/bin/python" -m pytest "$@"
