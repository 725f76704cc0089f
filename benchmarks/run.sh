#!/usr/bin/env bash
# Run the repository benchmark with the project's venv (made by scripts/setup.sh).
#   bash benchmarks/run.sh --quick     # 2,000 entries / 200 servers / ~100 MiB, under a minute
#   bash benchmarks/run.sh             # 20,000 entries / 2,000 servers / ~1 GiB (several minutes)
#   bash benchmarks/run.sh --build-only  # only build (or check) the full-size feed and keep it in --workdir
# Other options: bash benchmarks/run.sh --help
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PY="${EXUP_VENV:-$ROOT/.venv}/bin/python"
if [ ! -x "$PY" ]; then
    echo "no project venv at $PY: run 'bash scripts/setup.sh' first (or set EXUP_VENV)" >&2
    exit 1
fi
for tool in nginx aria2c curl sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || { echo "$tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
exec "$PY" "$ROOT/benchmarks/bench_repo.py" "$@"
