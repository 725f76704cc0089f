#!/usr/bin/env bash
# Package downloads from the repository service against nginx and a bare granian route (issue 11); see bench_service.py.
#   bash benchmarks/run_service.sh            # 600 x 1 MiB and 3,000 x 100 KiB, 3 rounds, HTTP (about 2 minutes)
#   bash benchmarks/run_service.sh --tls      # the same over HTTPS
#   bash benchmarks/run_service.sh --quick    # 100 + 500 files, 1 round
# Runs with the project's venv (scripts/setup.sh makes it): the service's own granian and starlette.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PY="${EXUP_VENV:-$ROOT/.venv}/bin/python"
if [ ! -x "$PY" ]; then
    echo "no project venv at $PY: run 'bash scripts/setup.sh' first (or set EXUP_VENV)" >&2
    exit 1
fi
for tool in nginx curl; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || { echo "$tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
if [ ! -e "$ROOT/build/collections/ansible_collections/exup/fleet" ]; then
    echo "no build/collections link: run 'bash scripts/setup.sh' first" >&2
    exit 1
fi
export PYTHONPATH="$ROOT/build/collections${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$ROOT/benchmarks/bench_service.py" "$@"
