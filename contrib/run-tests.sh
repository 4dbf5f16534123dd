#!/usr/bin/env bash
# Install everything and run the whole test suite (as root):
#   bash contrib/run-tests.sh [pytest args...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash contrib/install.sh --test
python3 -m ruff check .
python3 -m pytest -ra "$@"
