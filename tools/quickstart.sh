#!/usr/bin/env bash
# Set up the environment (idempotent) and run the quickstart.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$REPO/tools/setup_env.sh"
cd "$REPO"
exec "${PYTHON:-python3}" tools/quickstart.py "$@"
