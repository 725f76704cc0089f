#!/usr/bin/env bash
# Compare the candidate HTTP servers of the repository service against nginx (issue 11); see bench_servers.py.
#   bash benchmarks/run_servers.sh            # 600 x 1 MiB and 3,000 x 100 KiB files, 3 rounds (a few minutes)
#   bash benchmarks/run_servers.sh --quick    # 100 + 500 files, 1 round
# The candidates live in their own venv (build/bench-servers-venv, from benchmarks/servers/requirements.txt), made
# from the project's Python (scripts/setup.sh makes .venv), so the collection's dependencies stay as they are.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
BASE_PY="${EXUP_VENV:-$ROOT/.venv}/bin/python"
VENV="$ROOT/build/bench-servers-venv"
REQ="$ROOT/benchmarks/servers/requirements.txt"
if [ ! -x "$BASE_PY" ]; then
    echo "no project venv at $BASE_PY: run 'bash scripts/setup.sh' first (or set EXUP_VENV)" >&2
    exit 1
fi
for tool in nginx curl; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || { echo "$tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    "$BASE_PY" -m venv --clear "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
    echo "$want" > "$VENV/.requirements.sha256"
fi
exec "$VENV/bin/python" "$ROOT/benchmarks/bench_servers.py" "$@"
