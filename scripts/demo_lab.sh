#!/usr/bin/env bash
# The managed-servers part of the exup.fleet demo (step 8 of scripts/demo.sh), also run on its own:
#
#   bash scripts/demo_lab.sh [DIR]        # default build/demo; needs root and scripts/setup.sh done
#
# 1. starts the test lab (tests/lab: hosts over real ssh on 127.0.1.x, each with its own system root) in DIR/lab
#    and fills a repository DIR/lab-repo with the lab's signed packages;
# 2. a baseline kept as data, the way it would live in git (docs/baselines.md, docs/gitops.md): the group vars file
#    DIR/lab/group_vars/managed.yml gives the group `managed` its exup_baseline;
# 3. scans the group against it before anything is installed (playbooks/scan.yml, scan_report_dir): the compliance
#    report in DIR/reports/before (compliance.html, .json, JUnit .xml) says every server fails;
# 4. installs the agent with playbooks/agent_install.yml on every host (the VM guest, the unsupported OS and the
#    unsupported model fail with their reason);
# 5. a rolling apply with playbooks/apply.yml: a canary wave of one server, then the rest half at a time
#    (apply_serial [1, "50%"]); each server restarts through ansible.builtin.reboot only where 003 §2.1.2 allows it,
#    and its versions are read again after the restart (a package reported succeeded whose version did not change
#    fails as succeeded_unchanged);
# 6. scans again: the report in DIR/reports/after shows the servers now pass; prints both reports' counts;
# 7. applies again: nothing is left to do.
# The lab is stopped on exit.
set -euo pipefail
# EXUP_LOG_TAG is read by log() in scripts/lib.sh.
# shellcheck disable=SC2034
EXUP_LOG_TAG=demo
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$EXUP_ROOT"

DEMO="${1:-$EXUP_ROOT/build/demo}"
LAB_DIR="$DEMO/lab"
REPORTS="$DEMO/reports"
export PATH="$EXUP_VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$EXUP_COLLECTIONS"
export PYTHONPATH="$EXUP_COLLECTIONS${PYTHONPATH:+:$PYTHONPATH}"
export ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-1}"
t0=$(date +%s)

stop_lab() {
    if [ -f "$LAB_DIR/lab.json" ]; then
        "$EXUP_PY" "$EXUP_ROOT/tests/lab/lab.py" down --dir "$LAB_DIR" >/dev/null 2>&1 || true
    fi
}
trap stop_lab EXIT
trap 'exit 130' INT TERM
mkdir -p "$DEMO"
rm -rf "$REPORTS" "$DEMO/lab-repo"

# ------------------------------------------------------------------ 1. the lab and its repository
log "starting the lab of managed servers (tests/lab, docs/lab.md)"
"$EXUP_PY" "$EXUP_ROOT/tests/lab/lab.py" up --dir "$LAB_DIR" --hosts demo
"$EXUP_PY" "$EXUP_ROOT/tests/lab/lab.py" repo --dir "$LAB_DIR" --path "$DEMO/lab-repo"
export ANSIBLE_CONFIG="$LAB_DIR/ansible.cfg"
common=(-e "exup_repository=$DEMO/lab-repo" -e "{\"exup_trusted_keys\": [\"$LAB_DIR/keys/vendor.pem\"]}")

# ------------------------------------------------------------------ 2. the baseline, as group vars
mkdir -p "$LAB_DIR/group_vars"
cat >"$LAB_DIR/group_vars/managed.yml" <<'EOF'
# The firmware baseline of the group managed (docs/baselines.md): data kept in git next to the inventory.
exup_baseline:
  name: lab-2026q3
  description: the demo lab's baseline
  max_reading_age_hours: 24
  modules:
    system-bios:                # the newest critical or recommended BIOS in the repository, or newer
      version: newest
      rule: not_older
      severity: [critical, recommended]
    bmc-firmware:
      version: newest
      rule: not_older
    fc-controller:
      version: newest
    raid-controller: "5.1"      # exactly 5.1
    sdr:
      rule: ignore
EOF
log "baseline of group managed: $LAB_DIR/group_vars/managed.yml"

# ------------------------------------------------------------------ 3. scan against the baseline, report
log "scanning group managed against its baseline (playbooks/scan.yml): report in $REPORTS/before"
ansible-playbook "$EXUP_ROOT/playbooks/scan.yml" "${common[@]}" -e target=managed -e "scan_report_dir=$REPORTS/before"

# ------------------------------------------------------------------ 4. the agent
log "installing the agent on every lab server (003 §3.8); the unsupported ones fail with their reason"
ansible-playbook "$EXUP_ROOT/playbooks/agent_install.yml" "${common[@]}" \
    -e target=managed:vm_guests:unsupported_os:unsupported_model -e agent_license_accepted=true -e agent_fail_on_error=false

# ------------------------------------------------------------------ 5. rolling apply with restarts and verification
log "rolling apply: a canary wave of one server, then half of the rest at a time, restarting where allowed (003 §2.1.2)"
ansible-playbook "$EXUP_ROOT/playbooks/apply.yml" "${common[@]}" -e target=managed -e apply_allow_reboot=true \
    -e '{"apply_serial": [1, "50%"]}'

# ------------------------------------------------------------------ 6. the report again
log "scanning group managed again: report in $REPORTS/after"
ansible-playbook "$EXUP_ROOT/playbooks/scan.yml" "${common[@]}" -e target=managed -e "scan_report_dir=$REPORTS/after"

# ------------------------------------------------------------------ 7. nothing left
log "applying again: nothing is left to do"
ansible-playbook "$EXUP_ROOT/playbooks/apply.yml" "${common[@]}" -e target=managed -e apply_status_filter=all

"$EXUP_PY" "$EXUP_ROOT/scripts/demo_helper.py" compliance --before "$REPORTS/before" --after "$REPORTS/after"
echo "Lab: $LAB_DIR (inventory.yml, group_vars/managed.yml, hosts/<name>/ system roots); lab repository: $DEMO/lab-repo"
echo "Lab part finished in $(( $(date +%s) - t0 ))s."
