#!/usr/bin/env bash
# One-command benchmark: bash bench/run.sh [--quick] [other bench/run.py options]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "$ROOT/.venv/bin/python" "$ROOT/bench/run.py" "$@"
