#!/usr/bin/env bash
# The cost of one remote exup_info against a local one (issue 11, item 8); see bench_remote.py.
#   bash benchmarks/run_remote.sh            # 30 in-process rounds, 6 playbook rounds on one lab host, 5 cold starts (about 4 minutes)
#   bash benchmarks/run_remote.sh --quick    # 5 / 2 / 1, a smaller store
# Runs with the project's venv (scripts/setup.sh makes it): the service's own granian, the lab's sshd.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PY="${EXUP_VENV:-$ROOT/.venv}/bin/python"
if [ ! -x "$PY" ]; then
    echo "no project venv at $PY: run 'bash scripts/setup.sh' first (or set EXUP_VENV)" >&2
    exit 1
fi
if [ ! -e "$ROOT/build/collections/ansible_collections/exup/fleet" ]; then
    echo "no build/collections link: run 'bash scripts/setup.sh' first" >&2
    exit 1
fi
export ANSIBLE_COLLECTIONS_PATH="$ROOT/build/collections"
export PYTHONPATH="$ROOT/build/collections${PYTHONPATH:+:$PYTHONPATH}"
PY_DIR="$(dirname "$PY")"
export PATH="$PY_DIR:$PATH"
exec "$PY" "$ROOT/benchmarks/bench_remote.py" "$@"
