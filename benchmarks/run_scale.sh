#!/usr/bin/env bash
# Scale of the repository and the inventory plugin (issue 12); see bench_scale.py and docs/scale.md.
#   bash benchmarks/run_scale.sh            # inventory: 10,000 hosts, plugin / warm cache / static YAML / static JSON, 5 rounds; repo: 1k, 10k, 100k servers
#   bash benchmarks/run_scale.sh --part inventory --rounds 5 --methods plugin,static-json,service,service-warm-cache
#                                           # the same 10,000 hosts behind the repository service (HTTPS), no cache / warm cache
#   bash benchmarks/run_scale.sh --quick    # 2,000 hosts, 2 rounds; repo: 1k, 10k
# Runs with the project's venv (scripts/setup.sh makes it) and its ansible-inventory.
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
PATH="$(dirname "$PY"):$PATH"
export PATH
export ANSIBLE_COLLECTIONS_PATH="$ROOT/build/collections"
export PYTHONPATH="$ROOT/build/collections${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$ROOT/benchmarks/bench_scale.py" "$@"
