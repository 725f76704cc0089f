#!/usr/bin/env bash
# The "compat" step of scripts/test.sh: the collection on the oldest supported ansible-core (2.19)
# with Python 3.11, in a venv of its own (build/venv-compat, pins in requirements-compat.txt), so
# .venv's pins (ansible-core 2.21, Python >= 3.12) are not touched.
#
#   units   pytest tests/unit (plain pytest, not ansible-test: ansible-test's own venvs are for the newest)
#   smoke   a subset of tests/system: the sync module, the BMC playbook and the agent install
#           over ssh on the lab, with ansible-playbook from this venv
#
# Sanity runs on the newest ansible-core only (the sanity step).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh
EXUP_LOG_TAG="compat"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$EXUP_ROOT"

VENV="$EXUP_ROOT/build/venv-compat"
PINS="$EXUP_ROOT/requirements-compat.txt"
STAMP="$VENV/.pins.sha256"

find_python311() {   # an absolute path to a Python 3.11 that runs
    local p v
    p="$(command -v python3.11 2>/dev/null)" && "$p" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
        && { "$p" -c 'import sys; print(getattr(sys, "_base_executable", None) or sys.executable)'; return 0; }
    if command -v pyenv >/dev/null 2>&1; then
        v="$(pyenv versions --bare 2>/dev/null | grep -E '^3\.11\.[0-9]+$' | sort -t. -k3,3n | tail -n1)"
        [ -n "$v" ] && p="$(pyenv prefix "$v")/bin/python3.11" && "$p" -V >/dev/null 2>&1 && { echo "$p"; return 0; }
    fi
    return 1
}

make_venv() {
    local want
    want="$(cat "$PINS" requirements.txt | sha256sum | cut -d' ' -f1)"
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
        log "venv $VENV is up to date"
        return 0
    fi
    local py
    py="$(find_python311)" || die "no Python 3.11 found (python3.11 on PATH or in pyenv)"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$PINS"
    echo "$want" > "$STAMP"
    log "venv $VENV: $("$VENV/bin/python" -V), $("$VENV/bin/ansible" --version | head -n1)"
}

compat_env() {   # run a command with this venv first, the collection linked as in .venv
    env PATH="$VENV/bin:$PATH" PYTHONPATH="$EXUP_COLLECTIONS" ANSIBLE_COLLECTIONS_PATH="$EXUP_COLLECTIONS" "$@"
}

run_units() {
    compat_env "$VENV/bin/python" -m pytest -q -p no:cacheprovider -n 2 tests/unit
}

SMOKE=(tests/system/test_sync_module.py tests/system/test_bmc_playbook.py tests/system/test_agent_install.py)

run_smoke() {
    compat_env "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${SMOKE[@]}"
}

step venv make_venv
step units run_units
step smoke run_smoke
