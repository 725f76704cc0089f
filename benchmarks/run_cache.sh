#!/usr/bin/env bash
# HTTP caches (nginx proxy_cache) in front of the repository service's package files (issue 12); see bench_cache.py.
#   bash benchmarks/run_cache.sh                  # 50 hosts, 25 at a time, 16 MiB + 4 MiB + 1 MiB + 256 KiB each, 3 rounds
#   bash benchmarks/run_cache.sh --auth basic     # the same with the read login instead of pool tickets
#   bash benchmarks/run_cache.sh --quick          # 10 hosts, 1 round
# Runs with the project's venv (scripts/setup.sh makes it): the service's own granian and starlette, and nginx.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PY="${EXUP_VENV:-$ROOT/.venv}/bin/python"
if [ ! -x "$PY" ]; then
    echo "no project venv at $PY: run 'bash scripts/setup.sh' first (or set EXUP_VENV)" >&2
    exit 1
fi
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { echo "nginx is missing (scripts/setup.sh installs it)" >&2; exit 1; }
if [ ! -e "$ROOT/build/collections/ansible_collections/exup/fleet" ]; then
    echo "no build/collections link: run 'bash scripts/setup.sh' first" >&2
    exit 1
fi
export PYTHONPATH="$ROOT/build/collections${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$ROOT/benchmarks/bench_cache.py" "$@"
