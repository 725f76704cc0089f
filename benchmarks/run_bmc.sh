#!/usr/bin/env bash
# Run the BMC update benchmark (emulated Redfish BMCs) with the project's venv (made by scripts/setup.sh).
#   bash benchmarks/run_bmc.sh --quick   # 10 BMCs, 1 round
#   bash benchmarks/run_bmc.sh           # 50 BMCs, 3 rounds
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PY="${EXUP_VENV:-$ROOT/.venv}/bin/python"
if [ ! -x "$PY" ]; then
    echo "no project venv at $PY: run 'bash scripts/setup.sh' first (or set EXUP_VENV)" >&2
    exit 1
fi
command -v curl >/dev/null 2>&1 || { echo "curl is missing (scripts/setup.sh installs it)" >&2; exit 1; }
export PYTHONPATH="$ROOT/build/collections${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$ROOT/benchmarks/bench_bmc.py" "$@"
