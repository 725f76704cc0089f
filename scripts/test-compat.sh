#!/usr/bin/env bash
# The "compat" step of scripts/test.sh: the collection on the oldest supported ansible-core (2.19)
# with Python 3.11, in a venv of its own (build/venv-compat, pins in requirements-compat.txt), so
# .venv's pins (ansible-core 2.21, Python >= 3.12) are not touched.
#
#   units   pytest tests/unit (plain pytest, not ansible-test: ansible-test's own venvs are for the newest)
#   smoke   a subset of tests/system: the sync module, the BMC playbook and the agent install
#           over ssh on the lab, with ansible-playbook from this venv
#   integration  ansible-test integration --local --python 3.11 (this venv's ansible-test 2.19) in a
#           copy of its own, build/ansible-test-compat/ansible_collections/exup/fleet, so it never
#           collides with the newest ansible-test's copy (build/ansible-test) and needs no lock.
#           --local makes no venv, so no pip bootstrap (get_pip stand-in) is needed.
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

AT_COMPAT_TOP="$EXUP_ROOT/build/ansible-test-compat"
AT_COMPAT_ROOT="$AT_COMPAT_TOP/ansible_collections/exup/fleet"

prepare_at_copy() {   # as prepare_copy in scripts/test.sh: a real copy with .git, keeping tests/output
    mkdir -p "$AT_COMPAT_ROOT/tests"
    find "$AT_COMPAT_ROOT" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
    find "$AT_COMPAT_ROOT/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
    tar -C "$EXUP_ROOT" \
        --exclude=./.venv --exclude=./build --exclude=./tests/output --exclude=./.ansible \
        --exclude=./benchmarks/results --exclude=__pycache__ --exclude=.pytest_cache \
        -cf - . | tar -C "$AT_COMPAT_ROOT" -xf -
}

run_integration() {
    local pyver
    pyver="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    prepare_at_copy
    # shellcheck disable=SC2206
    local extra=(${EXUP_ANSIBLE_TEST_ARGS:-})
    (cd "$AT_COMPAT_ROOT" && env PATH="$VENV/bin:$PATH" PYTHONPATH="$AT_COMPAT_TOP" \
        ANSIBLE_COLLECTIONS_PATH="$AT_COMPAT_TOP" \
        "$VENV/bin/ansible-test" integration --local --python "$pyver" "${extra[@]}")
}

step venv make_venv
step units run_units
step smoke run_smoke
step integration run_integration
