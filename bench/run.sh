#!/usr/bin/env bash
# One-command benchmark: bash bench/run.sh [--quick] [other bench/run.py options]
#   (the gateway bench, then the streaming bench; --no-streams skips the streaming bench)
#   bash bench/run.sh --streams-only [bench/streams.py options]  only the streaming bench
#   bash bench/run.sh --evals-only [bench/evals.py options]   only the eval runner bench
#   bash bench/run.sh --evals [bench/run.py options]          the gateway bench, then the
#                                                             eval runner bench (same --output)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
if [[ "${1:-}" == "--evals-only" ]]; then
    shift
    exec "$PY" "$ROOT/bench/evals.py" "$@"
fi
if [[ "${1:-}" == "--streams-only" ]]; then
    shift
    exec "$PY" "$ROOT/bench/streams.py" "$@"
fi
evals=0
args=()
output=()
prev=""
for a in "$@"; do
    if [[ "$a" == "--evals" ]]; then
        evals=1
        continue
    fi
    if [[ "$prev" == "--output" ]]; then output=(--output "$a"); fi
    if [[ "$a" == --output=* ]]; then output=(--output "${a#--output=}"); fi
    args+=("$a")
    prev="$a"
done
if [[ $evals == 0 ]]; then
    exec "$PY" "$ROOT/bench/run.py" "$@"
fi
"$PY" "$ROOT/bench/run.py" ${args[@]+"${args[@]}"}
exec "$PY" "$ROOT/bench/evals.py" ${output[@]+"${output[@]}"}
