#!/usr/bin/env bash
# Install everything the exup.fleet tests need. Idempotent: safe to re-run, and quick when done.
#
#   bash scripts/setup.sh            # then:  source build/env.sh
#
# What it does (each part skipped when already done):
#   1. Debian packages used by the tests: the [test] profile of bindep.txt (apache2-utils nginx squid
#      openssh-server ipmitool aria2 curl git shellcheck ...), the one declared list of system packages.
#   2. A Python >= 3.12 (PATH, then pyenv) and the venv .venv with requirements*.txt installed.
#   3. build/collections/ansible_collections/exup/fleet -> the repo root (so Ansible and
#      `import ansible_collections.exup.fleet...` find the collection), and build/env.sh.
#   4. The offline stand-in for ansible-test's pip bootstrap script (~/.ansible/test/cache/get_pip_*.py).
#
# Environment knobs: EXUP_PYTHON=/path/to/python3.13 (interpreter for a new venv),
# EXUP_VENV=/path (venv location), EXUP_SKIP_APT=1 (never touch apt).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh
EXUP_LOG_TAG="setup"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$EXUP_ROOT"

# ---------------------------------------------------------------- 1. Debian packages
# The list is bindep.txt (profile "test"), the one declared list of system packages; lib.sh parses it.
installed_package() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

install_apt_packages() {
    local missing=() wanted=() pkg
    mapfile -t wanted < <(bindep_entries test | cut -f1)
    [ "${#wanted[@]}" -gt 0 ] || die "bindep.txt lists no package for the test profile on this platform ($(bindep_platforms))"
    command -v dpkg-query >/dev/null 2>&1 || die "not a dpkg system: install these (bindep.txt, profile test) by hand: ${wanted[*]}"
    for pkg in "${wanted[@]}"; do
        installed_package "$pkg" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "system packages: all ${#wanted[@]} of bindep.txt (test) present"
        return 0
    fi
    if [ -n "${EXUP_SKIP_APT:-}" ]; then
        log "system packages missing (${missing[*]}) but EXUP_SKIP_APT is set: not installing"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing commands from packages: ${missing[*]}, and no apt-get to install them"
    log "installing system packages: ${missing[*]}"
    # Keep package scripts from starting the services (nginx on :80, squid on :3128 ...):
    # the tests start their own instances with private configs.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        made_policy=1
    fi
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || log "apt-get update failed; trying the install anyway"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" || rc=$?
    [ -z "$made_policy" ] || as_root rm -f "$policy"
    [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed (exit $rc)"
}

# ---------------------------------------------------------------- 2. Python venv
venv_ok() {
    [ -x "$EXUP_PY" ] && py_ok "$EXUP_PY" && "$EXUP_PY" -c 'import ensurepip, venv' >/dev/null 2>&1
}

ensure_venv() {
    if venv_ok; then
        log "venv: $EXUP_VENV ($("$EXUP_PY" -V 2>&1))"
    else
        local base
        base="$(find_python)"
        log "creating venv $EXUP_VENV with $base ($("$base" -V 2>&1))"
        rm -rf "$EXUP_VENV"
        "$base" -m venv "$EXUP_VENV"
        venv_ok || die "the new venv at $EXUP_VENV does not work"
    fi

    local stamp="$EXUP_VENV/.exup-requirements.sha256" want have=""
    want="$( { cat requirements.txt requirements-test.txt; "$EXUP_PY" -VV; } | sha256sum | cut -d' ' -f1)"
    [ -f "$stamp" ] && have="$(cat "$stamp")"
    if [ "$want" = "$have" ]; then
        log "python requirements: up to date"
        return 0
    fi
    log "installing python requirements (requirements.txt + requirements-test.txt)"
    rm -f "$stamp"
    "$EXUP_PY" -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-test.txt
    echo "$want" > "$stamp"
}

# ---------------------------------------------------------------- 3. collection path + env file
ensure_collection_link() {
    local parent="$EXUP_COLLECTIONS/ansible_collections/exup" link
    link="$parent/fleet"
    mkdir -p "$parent"
    if [ -L "$link" ] && [ "$(readlink "$link")" = "../../../.." ]; then
        :
    else
        rm -rf "$link"
        # relative: build/collections/ansible_collections/exup/fleet -> the repo root
        ln -s ../../../.. "$link"
    fi
    [ -f "$link/galaxy.yml" ] || die "collection link $link does not reach galaxy.yml"

    local env_file="$EXUP_ROOT/build/env.sh" content
    content="# generated by scripts/setup.sh: source it to use the dev environment
export EXUP_ROOT='$EXUP_ROOT'
export ANSIBLE_COLLECTIONS_PATH='$EXUP_COLLECTIONS'
export PYTHONPATH='$EXUP_COLLECTIONS'\${PYTHONPATH:+:\$PYTHONPATH}
export PATH='$EXUP_VENV/bin':\$PATH"
    if [ ! -f "$env_file" ] || [ "$(cat "$env_file")" != "$content" ]; then
        printf '%s\n' "$content" > "$env_file"
    fi
    log "collection: $link -> $EXUP_ROOT"
}

# ---------------------------------------------------------------- 4. ansible-test offline pip bootstrap
# ansible-test (ansible_test/_util/target/setup/requirements.py) bootstraps pip in every venv it makes
# from ~/.ansible/test/cache/get_pip_<ver>.py, downloading it from a host other than PyPI when absent.
# Our stand-in runs ensurepip then `pip install` with the arguments given (pip==<ver> from PyPI).
STANDIN_MARK="exup.fleet offline stand-in for get-pip.py"

ensure_get_pip_standin() {
    local req_py versions v cache_dir target
    req_py="$(find "$EXUP_VENV"/lib/python3.*/site-packages/ansible_test/_internal -maxdepth 1 -name python_requirements.py 2>/dev/null | head -n1)"
    [ -n "$req_py" ] || die "ansible-test is not installed in $EXUP_VENV"
    # every pip version ansible-test may ask for (default_packages and any per-Python override)
    versions="$(grep -oE "pip\s*=\s*'[0-9][0-9.]*'" "$req_py" | grep -oE "[0-9][0-9.]*" | sort -u)"
    [ -n "$versions" ] || die "could not find the pip version in $req_py (ansible-test changed?)"
    cache_dir="${HOME}/.ansible/test/cache"
    mkdir -p "$cache_dir"
    for v in $versions; do
        target="$cache_dir/get_pip_${v//./_}.py"
        if [ -f "$target" ] && ! grep -q "$STANDIN_MARK" "$target"; then
            log "ansible-test pip bootstrap: $target is a real get-pip.py, leaving it"
            continue
        fi
        local tmp="$target.exup-tmp"
        cat > "$tmp" <<PYEOF
# $STANDIN_MARK (pip $v), written by scripts/setup.sh.
# ansible-test runs this as get-pip.py with pip install arguments, e.g. "pip==$v --no-setuptools --no-wheel".
# See https://github.com/ansible/ansible/issues/77304 (offline use of ansible-test).
import subprocess
import sys


def main():
    args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade'], stdout=subprocess.DEVNULL)
    if args:
        subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--upgrade', '--quiet'] + args)


if __name__ == '__main__':
    main()
PYEOF
        if [ -f "$target" ] && cmp -s "$tmp" "$target"; then
            rm -f "$tmp"
        else
            mv -f "$tmp" "$target"
            log "ansible-test pip bootstrap: wrote $target"
        fi
    done
    log "ansible-test pip bootstrap: stand-in for pip ${versions//$'\n'/ } in $cache_dir"
}

t0=$(date +%s)
install_apt_packages
ensure_venv
ensure_collection_link
ensure_get_pip_standin
log "done in $(( $(date +%s) - t0 ))s. Use:  source build/env.sh"
log "  ANSIBLE_COLLECTIONS_PATH=$EXUP_COLLECTIONS   python: $EXUP_PY"
