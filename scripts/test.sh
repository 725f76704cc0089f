#!/usr/bin/env bash
# Run the exup.fleet test suites, failing on the first failing step.
#
#   bash scripts/test.sh                     # every step
#   bash scripts/test.sh sanity units        # only these steps (in the canonical order)
#
# Steps: changelog ruff mypy sanity units compat lint publish integration system
#   changelog    antsibull-changelog lint (fragments and config)
#   ruff         ruff check + ruff format --check      (settings in pyproject.toml; fix: see below)
#   mypy         mypy on plugins/ and tests/            (through build/collections, settings in pyproject.toml)
#   sanity       ansible-test sanity --venv          in build/ansible-test/ansible_collections/exup/fleet
#   units        ansible-test units --venv           (tests/unit; skipped when it has no test_*.py)
#   compat       scripts/test-compat.sh: the oldest supported ansible-core in a venv of its own (build/venv-compat)
#   lint         ansible-lint at the collection root (production profile, .ansible-lint)
#   publish      scripts/test-publish.sh: the built collection as Galaxy, users and ansible-builder see it (build/venv-tools)
#   integration  ansible-test integration --local    (tests/integration/targets; skipped when none)
#   system       pytest -q tests/system              (from the repo root; skipped when no test files)
#
# Extra arguments: EXUP_ANSIBLE_TEST_ARGS (added to each ansible-test call, e.g. "-v"),
# EXUP_SANITY_ARGS (sanity only, e.g. "--test pep8" or "--skip-test pylint" for a quick loop),
# EXUP_PYTEST_ARGS (added to the system pytest call, e.g. "-x -k proxy" or "-n 2").
#
# The ruff step lists each finding and each file the formatter would change. Most are fixed by
#   .venv/bin/ruff check --fix . && .venv/bin/ruff format .
# (what --fix leaves, e.g. B904 raise-without-from, is fixed by hand or with a "# noqa: CODE  # why").
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh
EXUP_LOG_TAG="test"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$EXUP_ROOT"

ALL_STEPS=(changelog ruff mypy sanity units compat lint publish integration system)

usage() {
    echo "usage: bash scripts/test.sh [STEP...]   steps: ${ALL_STEPS[*]}" >&2
    exit 2
}

# --------------------------------------------------------------- which steps
declare -A WANT=()
if [ "$#" -eq 0 ]; then
    for s in "${ALL_STEPS[@]}"; do WANT[$s]=1; done
else
    for a in "$@"; do
        case "$a" in
            -h|--help) usage ;;
            all) for s in "${ALL_STEPS[@]}"; do WANT[$s]=1; done ;;
            changelog|ruff|mypy|sanity|units|compat|lint|publish|integration|system) WANT[$a]=1 ;;
            *) echo "unknown step: $a" >&2; usage ;;
        esac
    done
fi

PYVER="?"
PASSED=0; FAILED=0; SKIPPED=0
skip() { log "SKIP $1: $2"; STEP_SUMMARY+=("$(printf '%-12s skipped (%s)' "$1" "$2")"); SKIPPED=$((SKIPPED + 1)); }

finish() {
    local rc=$?
    printf '\n==== summary (python %s)\n' "$PYVER" >&2
    local line
    for line in "${STEP_SUMMARY[@]}"; do printf '  %s\n' "$line" >&2; done
    # steps counted, setup excluded (worded unlike a test runner's "N passed, N failed" line on purpose:
    # the test counts are in the runners' own closing lines above)
    printf '==== steps ok=%s failed=%s skipped=%s (exit %s)\n' "$PASSED" "$FAILED" "$SKIPPED" "$rc"
    exit "$rc"
}
trap finish EXIT

run_step() {   # run_step LABEL CMD...: counts the result, stops the script on failure
    local label="$1"; shift
    if step "$label" "$@"; then
        PASSED=$((PASSED + 1))
    else
        local rc=$?
        FAILED=$((FAILED + 1))
        exit "$rc"
    fi
}

# --------------------------------------------------------------- setup
step setup bash "$EXUP_ROOT/scripts/setup.sh"

PYVER="$(py_version "$EXUP_PY")"
export PATH="$EXUP_VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$EXUP_COLLECTIONS"
export PYTHONPATH="$EXUP_COLLECTIONS${PYTHONPATH:+:$PYTHONPATH}"
# shellcheck disable=SC2206
AT_EXTRA=(${EXUP_ANSIBLE_TEST_ARGS:-})
# shellcheck disable=SC2206
PYTEST_EXTRA=(${EXUP_PYTEST_ARGS:-})
# shellcheck disable=SC2206
SANITY_EXTRA=(${EXUP_SANITY_ARGS:-})

# --------------------------------------------------------------- the ansible-test copy
# ansible-test must run inside .../ansible_collections/exup/fleet, a real directory (a cwd reached
# through a symlink resolves to the real path). It lists files through git (tracked + untracked,
# minus .gitignore), so the copy includes .git.
COPY_READY=""
prepare_copy() {
    [ -z "$COPY_READY" ] || return 0
    local t0=$SECONDS
    # Start from an empty copy but keep its tests/output (ansible-test's results and cached venvs).
    mkdir -p "$EXUP_AT_ROOT/tests"
    find "$EXUP_AT_ROOT" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
    find "$EXUP_AT_ROOT/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
    tar -C "$EXUP_ROOT" \
        --exclude=./.venv --exclude=./build --exclude=./tests/output --exclude=./.ansible \
        --exclude=./benchmarks/results --exclude=__pycache__ --exclude=.pytest_cache \
        -cf - . | tar -C "$EXUP_AT_ROOT" -xf -
    COPY_READY=1
    log "ansible-test copy ready in $((SECONDS - t0))s: $EXUP_AT_ROOT"
}

has_files() {  # has_files DIR FIND-ARGS... -> 0 when DIR exists and find matches something
    local dir="$1"; shift
    [ -d "$dir" ] && [ -n "$(find "$dir" "$@" -print -quit 2>/dev/null)" ]
}

at() {  # run ansible-test in the copy
    (cd "$EXUP_AT_ROOT" && ANSIBLE_COLLECTIONS_PATH="$EXUP_ROOT/build/ansible-test" ansible-test "$@" "${AT_EXTRA[@]}")
}

# --------------------------------------------------------------- steps
if [ -n "${WANT[changelog]:-}" ]; then
    run_step changelog antsibull-changelog lint
fi

ruff_checks() {   # both checks run, so one pass lists every finding; fails when either finds something
    local rc=0
    if ! ruff check --output-format concise .; then
        rc=1
        printf -- '-- by rule:\n' >&2
        ruff check --statistics . >&2 || :
    fi
    ruff format --check --output-format concise . || rc=1
    [ "$rc" -eq 0 ] || log "ruff: fix most with:  .venv/bin/ruff check --fix . && .venv/bin/ruff format ."
    return "$rc"
}

mypy_check() {   # report paths as in the repo, not through the build/collections link
    local rc=0
    mypy "$@" 2>&1 | sed -u "s#^build/collections/ansible_collections/exup/fleet/##" || rc=$?   # pipefail: mypy's status
    return "$rc"
}

if [ -n "${WANT[ruff]:-}" ]; then
    run_step ruff ruff_checks
fi

if [ -n "${WANT[mypy]:-}" ]; then
    run_step mypy mypy_check
fi

if [ -n "${WANT[sanity]:-}" ]; then
    prepare_copy
    run_step sanity at sanity --venv --python "$PYVER" "${SANITY_EXTRA[@]}"
fi

if [ -n "${WANT[units]:-}" ]; then
    if has_files tests/unit -type f -name 'test_*.py'; then
        prepare_copy
        run_step units at units --venv --python "$PYVER"
    else
        skip units "no tests/unit/**/test_*.py yet"
    fi
fi

if [ -n "${WANT[compat]:-}" ]; then
    if [ -f scripts/test-compat.sh ]; then
        run_step compat bash scripts/test-compat.sh
    else
        skip compat "scripts/test-compat.sh not written yet"
    fi
fi

if [ -n "${WANT[lint]:-}" ]; then
    # The whole collection as Galaxy and Automation Hub lint it: the root, the production profile.
    run_step lint ansible-lint --profile production
fi

if [ -n "${WANT[publish]:-}" ]; then
    if [ -f scripts/test-publish.sh ]; then
        run_step publish bash scripts/test-publish.sh
    else
        skip publish "scripts/test-publish.sh not written yet"
    fi
fi

if [ -n "${WANT[integration]:-}" ]; then
    if has_files tests/integration/targets -mindepth 1 -maxdepth 1 -type d; then
        prepare_copy
        run_step integration at integration --local --python "$PYVER"
    else
        skip integration "no tests/integration/targets/* yet"
    fi
fi

system_tests() {
    local rc=0
    "$EXUP_PY" -m pytest -q tests/system "${PYTEST_EXTRA[@]}" || rc=$?
    if [ "$rc" -eq 5 ]; then
        log "pytest collected no tests in tests/system (exit 5): treated as success"
        return 0
    fi
    return "$rc"
}

if [ -n "${WANT[system]:-}" ]; then
    if has_files tests/system -type f \( -name 'test_*.py' -o -name '*_test.py' \); then
        run_step system system_tests
    else
        skip system "no tests/system/**/test_*.py yet"
    fi
fi
