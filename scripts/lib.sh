# shellcheck shell=bash
# Shared helpers for scripts/setup.sh and scripts/test.sh. Source it, do not run it.
#
# Conventions (other scripts and engineers rely on these):
#   EXUP_ROOT                 the repository root (absolute, real path)
#   EXUP_VENV                 $EXUP_ROOT/.venv           (override with EXUP_VENV=...)
#   EXUP_PY                   $EXUP_VENV/bin/python
#   EXUP_COLLECTIONS          $EXUP_ROOT/build/collections
#                             (ansible_collections/exup/fleet inside it is a symlink to the repo root)
#   EXUP_AT_ROOT              $EXUP_ROOT/build/ansible-test/ansible_collections/exup/fleet
#                             (a real copy of the work tree, where ansible-test runs)

# shellcheck disable=SC2034  # these are used by the scripts that source this file
EXUP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
EXUP_VENV="${EXUP_VENV:-$EXUP_ROOT/.venv}"
EXUP_PY="$EXUP_VENV/bin/python"
EXUP_COLLECTIONS="$EXUP_ROOT/build/collections"
EXUP_AT_ROOT="$EXUP_ROOT/build/ansible-test/ansible_collections/exup/fleet"
EXUP_MIN_PY_MINOR=12   # ansible-core 2.21 needs Python >= 3.12 on the controller

log()  { printf '[%s] %s\n' "${EXUP_LOG_TAG:-exup}" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "${EXUP_LOG_TAG:-exup}" "$*" >&2; exit 1; }

# Run a command with sudo only when we are not root.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# py_ok PYTHON -> 0 when PYTHON runs and is >= 3.$EXUP_MIN_PY_MINOR
py_ok() {
    "$1" -c "import sys; sys.exit(0 if sys.version_info[:2] >= (3, $EXUP_MIN_PY_MINOR) else 1)" >/dev/null 2>&1
}

# py_version PYTHON -> prints "3.13"
py_version() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}

# find_python -> prints an absolute path to a Python >= 3.12 that really runs.
# Order: $EXUP_PYTHON, python3.13 / python3.12 / python3.14 on PATH, then pyenv (newest 3.13.x, 3.12.x, 3.14.x).
find_python() {
    local c p v prefix
    if [ -n "${EXUP_PYTHON:-}" ]; then
        py_ok "$EXUP_PYTHON" || die "EXUP_PYTHON=$EXUP_PYTHON does not run or is older than 3.$EXUP_MIN_PY_MINOR"
        command -v "$EXUP_PYTHON"
        return 0
    fi
    for c in python3.13 python3.12 python3.14; do
        p="$(command -v "$c" 2>/dev/null)" || continue
        # pyenv shims exist for versions that are not selected and then refuse to run: py_ok weeds them out
        if py_ok "$p"; then
            # resolve a shim to the real interpreter so the venv does not depend on pyenv state
            "$p" -c 'import sys; print(getattr(sys, "_base_executable", None) or sys.executable)'
            return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for minor in 13 12 14; do
            v="$(pyenv versions --bare 2>/dev/null | grep -E "^3\.${minor}\.[0-9]+$" | sort -t. -k3,3n | tail -n1)"
            [ -n "$v" ] || continue
            prefix="$(pyenv prefix "$v" 2>/dev/null)" || continue
            p="$prefix/bin/python3.$minor"
            if py_ok "$p"; then
                echo "$p"
                return 0
            fi
        done
    fi
    die "no Python >= 3.$EXUP_MIN_PY_MINOR found (ansible-core 2.21 needs it).
  Looked for python3.13/python3.12/python3.14 on PATH and for 3.13/3.12/3.14 in pyenv.
  Install one, e.g.:  apt-get install python3.13 python3.13-venv   (Debian 13 / Ubuntu 24.04+)
                  or:  pyenv install 3.13
  or point EXUP_PYTHON at an interpreter:  EXUP_PYTHON=/path/to/python3.13 bash scripts/setup.sh"
}

# Time a labeled step: step LABEL CMD... ; prints duration, returns the command's status.
STEP_SUMMARY=()
step() {
    local label="$1"; shift
    local t0 t1 rc
    printf '\n==== [%s] %s\n' "$label" "$*" >&2
    t0=$(date +%s.%N)
    set +e
    "$@"
    rc=$?
    set -e
    t1=$(date +%s.%N)
    local dur
    dur=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" -eq 0 ]; then
        printf '==== [%s] ok in %ss\n' "$label" "$dur" >&2
        STEP_SUMMARY+=("$(printf '%-12s ok      %7ss' "$label" "$dur")")
    else
        printf '==== [%s] FAILED (exit %s) after %ss\n' "$label" "$rc" "$dur" >&2
        STEP_SUMMARY+=("$(printf '%-12s FAILED  %7ss' "$label" "$dur")")
    fi
    return "$rc"
}

# ---------------------------------------------------------------- bindep.txt, the one list of system packages
# bindep_platforms -> prints this machine's bindep platform tags ("dpkg debian debian-12" ...)
bindep_platforms() {
    local tags="" id="" version=""
    command -v dpkg >/dev/null 2>&1 && tags="dpkg"
    command -v rpm >/dev/null 2>&1 && tags="$tags rpm"
    if [ -r /etc/os-release ]; then
        # shellcheck disable=SC1091
        read -r id version < <(. /etc/os-release && echo "${ID:-}" "${VERSION_ID:-}")
    fi
    [ -z "$id" ] || tags="$tags $id${version:+ $id-$version}"
    echo "$tags"
}

# bindep_selected SELECTORS PROFILES PLATFORMS -> 0 when an entry with SELECTORS (the words inside [...])
# is chosen. bindep's rules: in each kind (platform:..., profile) a positive word must match when there is
# one, and no negated (!word) may match; an entry without profile words belongs to every profile.
bindep_selected() {
    local profiles=" $2 " platforms=" $3 " word tag set kind
    local -A positive=([platform]=0 [profile]=0) hit=([platform]=0 [profile]=0)
    for word in $1; do
        tag="${word#!}"
        set=profiles; kind=profile
        if [ "${tag#platform:}" != "$tag" ]; then tag="${tag#platform:}"; set=platforms; kind=platform; fi
        if [ "${word#!}" != "$word" ]; then   # negated
            [[ "${!set}" != *" $tag "* ]] || return 1
        else
            positive[$kind]=1
            [[ "${!set}" != *" $tag "* ]] || hit[$kind]=1
        fi
    done
    [ "${positive[platform]}" = 0 ] || [ "${hit[platform]}" = 1 ] || return 1
    [ "${positive[profile]}" = 0 ] || [ "${hit[profile]}" = 1 ]
}

# bindep_entries PROFILES [PLATFORMS] -> one line "package<TAB>programs" per bindep.txt entry chosen for the
# profiles (space separated, e.g. "test") on this platform. Programs come from the "# programs:" comment line
# just above an entry (see bindep.txt). EXUP_BINDEP=FILE reads another file (the tests use it).
bindep_entries() {
    local profiles="$1" platforms="${2:-$(bindep_platforms)}" line name selectors programs=""
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
            "# programs:"*) programs="${line#\# programs:}"; programs="${programs# }"; continue ;;
            ""|"#"*) continue ;;
        esac
        name="${line%%[[:space:][]*}"
        selectors=""
        [[ "$line" != *"["*"]"* ]] || { selectors="${line#*[}"; selectors="${selectors%%]*}"; }
        if bindep_selected "$selectors" "$profiles" "$platforms"; then
            printf '%s\t%s\n' "$name" "$programs"
        fi
        programs=""
    done < "${EXUP_BINDEP:-$EXUP_ROOT/bindep.txt}"
}
