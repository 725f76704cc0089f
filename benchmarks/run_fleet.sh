#!/usr/bin/env bash
# Run the group-apply benchmark on the lab with the project's venv (made by scripts/setup.sh).
#   bash benchmarks/run_fleet.sh --quick   # 20 lab hosts, 1 round (about 2 minutes)
#   bash benchmarks/run_fleet.sh           # 100 lab hosts, forks 20, 3 rounds (about 15 minutes)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PY="${EXUP_VENV:-$ROOT/.venv}/bin/python"
if [ ! -x "$PY" ]; then
    echo "no project venv at $PY: run 'bash scripts/setup.sh' first (or set EXUP_VENV)" >&2
    exit 1
fi
export ANSIBLE_COLLECTIONS_PATH="$ROOT/build/collections"
export PYTHONPATH="$ROOT/build/collections${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$ROOT/benchmarks/bench_fleet.py" "$@"
