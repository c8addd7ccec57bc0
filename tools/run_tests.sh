#!/usr/bin/env bash
# Set up the environment (idempotent) and run the default test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -m slow`.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$REPO/tools/setup_env.sh"
cd "$REPO"
exec "${PYTHON:-python3}" -m pytest "$@"
