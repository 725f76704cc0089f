#!/usr/bin/env bash
# A sync from an upstream repository service against a sync from nginx as the feed (issue 11); see bench_chain.py.
#   bash benchmarks/run_chain.sh            # 3,000 entries / 300 servers / ~150 MiB needed, 3 rounds, HTTP and HTTPS, warm and cold upstream (~5 min)
#   bash benchmarks/run_chain.sh --quick    # 1,000 / 100 / ~50 MiB, 1 round
#   bash benchmarks/run_chain.sh --no-cold  # only the warm upstream against nginx
# Runs with the project's venv (scripts/setup.sh makes it): the service's own granian, nginx and curl.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PY="${EXUP_VENV:-$ROOT/.venv}/bin/python"
if [ ! -x "$PY" ]; then
    echo "no project venv at $PY: run 'bash scripts/setup.sh' first (or set EXUP_VENV)" >&2
    exit 1
fi
for tool in nginx curl ss; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || { echo "$tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
if [ ! -e "$ROOT/build/collections/ansible_collections/exup/fleet" ]; then
    echo "no build/collections link: run 'bash scripts/setup.sh' first" >&2
    exit 1
fi
export PYTHONPATH="$ROOT/build/collections${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$ROOT/benchmarks/bench_chain.py" "$@"
