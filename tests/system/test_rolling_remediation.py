# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling remediation with playbooks/apply.yml on six lab hosts (issue 13 item 4, docs/managed-servers.md).

Two runs of apply.yml at once, on different hosts:
- a canary rollout over host001..host003 (apply_serial [1, "100%"]: a canary, then the rest) whose health check fails after the first wave: host001 is
  applied, host002 and host003 are untouched (their versions on disk unchanged), the summary says the rollout halted;
  its post hook, a loop of short items, runs out of the whole hook's time (post_hook_timeout);
- one wave over host004..host006: host004's pre hook runs out of time (not applied, pre_hook_timeout; its post hook
  runs all the same), host005's
  pre-flight gate asks for more free disk than any disk has (skipped, preflight_disk_low), host006 is applied;
- playbooks/bmc_apply.yml on an emulated Redfish BMC whose task queue holds a running task: skipped, preflight_queue_busy.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.tests.lab.lab import REPO_ROOT, Lab
from ansible_collections.exup.fleet.tests.services import redfish
from ansible_collections.exup.fleet.tests.services.tls import make_tls_files
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah, bmc_helpers as bh
from ansible_collections.exup.fleet.tests.system.test_bmc_path import build_bmc_packages

APPLY_PLAYBOOK = REPO_ROOT / "playbooks" / "apply.yml"
AGENTS = ah.AGENT_INSTALL_PLAY_FLEET
UNHEALTHY = """\
---
- name: The service of the wave answers (it does not)
  ansible.builtin.fail:
    msg: the service did not come back on {{ inventory_hostname }}
"""
SLOW_DRAIN = """\
---
- name: Drain the workload (it never ends)
  ansible.builtin.command: sleep 60
  changed_when: false
"""
SLOW_LOOP = """\
---
- name: Undrain the workload, one slow step after the other
  ansible.builtin.command: sleep 2
  loop: [1, 2, 3, 4, 5]
  changed_when: false
"""
HEALTHY = """\
---
- name: The service answers
  ansible.builtin.command: "true"
  changed_when: false
"""


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    """Six lab hosts with the agent, then both apply.yml runs at once; their outputs, return codes and snapshots."""
    work = tmp_path_factory.mktemp("rolling")
    lab = Lab(work / "lab", hosts=6)
    lab.up()
    try:
        repo, pem = lab.make_repository(work / "repo")
        (work / "agents.yml").write_text(AGENTS)
        installed = ah.run_playbook(lab, work / "agents.yml", {"repos": {"default": str(repo)}, "pem": str(pem)})
        assert installed.returncode == 0, installed.stdout + installed.stderr
        for name, text in {"unhealthy.yml": UNHEALTHY, "drain.yml": SLOW_DRAIN, "healthy.yml": HEALTHY, "slow-loop.yml": SLOW_LOOP}.items():
            (work / name).write_text(text)
        names = lab.names
        before = {name: ah.snapshot(lab.host_root(name)) for name in names}
        common = {"exup_repository": str(repo), "exup_trusted_keys": [str(pem)], "apply_poll_interval": 1, "apply_modules": ["raid-controller"]}
        # the post hook's loop items take 2 s each, the hook 6 s: the whole hook runs out of time (the items alone do not)
        canary = dict(
            common,
            target=":".join(names[:3]),
            apply_serial=[1, "100%"],
            apply_health_check=str(work / "unhealthy.yml"),
            apply_post_hook=str(work / "slow-loop.yml"),
            apply_hook_timeout=6,
        )
        # per host: host004 drains for longer than the hook deadline, host005 wants more disk than exists
        host_vars = work / "gates.json"
        host_vars.write_text(
            json.dumps({"all": {"hosts": {names[3]: {"apply_pre_hook": str(work / "drain.yml")}, names[4]: {"apply_preflight_min_free_mb": 10**12}}}})
        )
        gates = dict(
            common, target=":".join(names[3:]), apply_hook_timeout=6, apply_health_check=str(work / "healthy.yml"), apply_post_hook=str(work / "healthy.yml")
        )
        commands = {
            "canary": ah.playbook_command(APPLY_PLAYBOOK, canary, "-i", lab.inventory_path),
            "gates": ah.playbook_command(APPLY_PLAYBOOK, gates, "-i", lab.inventory_path, "-i", host_vars),
        }
        processes = {
            name: subprocess.Popen(argv, env=lab.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name, argv in commands.items()
        }
        outputs, codes = {}, {}
        for name, process in processes.items():
            outputs[name] = process.communicate(timeout=240)[0]
            codes[name] = process.returncode
        after = {name: ah.snapshot(lab.host_root(name)) for name in names}
        yield {"names": names, "before": before, "after": after, "outputs": outputs, "codes": codes, "lab": lab, "repo": repo, "pem": pem, "work": work}
    finally:
        lab.down()


def summary_of(output: str) -> str:
    """The text of the summary task's message (the debug output of 'Show the summary')."""
    start = output.index("TASK [exup.fleet.rollout : Show the summary")
    return output[start : output.index("TASK [", start + 10)]


def hosts_of_task(output: str, name: str) -> set:
    """The hosts that ran the tasks called ``name`` (the lines "ok: [host]" and the like under their TASK headers)."""
    hosts = set()
    for block in output.split("TASK [")[1:]:
        if block.split("]", 1)[0].endswith(name):
            hosts |= set(re.findall(r"^(?:ok|changed|failed|fatal): \[([^\]]+)\]", block, re.MULTILINE))
    return hosts


def test_a_failed_health_check_after_the_canary_wave_stops_the_rollout(rollout):
    names, output = rollout["names"], rollout["outputs"]["canary"]
    assert rollout["codes"]["canary"] != 0, output  # the canary whose health check failed fails the run
    assert rollout["after"][names[0]]["versions"] != rollout["before"][names[0]]["versions"], output  # the canary was applied
    for name in names[1:3]:
        assert rollout["after"][name]["versions"] == rollout["before"][name]["versions"], output
        assert rollout["after"][name]["jobs"] == rollout["before"][name]["jobs"], output  # no job was ever started there
    summary = summary_of(output)
    assert (
        "health check failed (task The service of the wave answers (it does not)): the service did not come back on %s (health_check_failed)" % names[0]
        in summary
    ), summary
    # its last loop items never start; the line names the loop task only when an item itself timed out (a loaded machine)
    assert re.search(r"FAILED post hook did not finish within 6 s (\(task Undrain [^)]*\) )?\(post_hook_timeout\)", summary), summary
    assert "not applied: halted by the health check after wave 1 (%s) (health_check_failed)" % names[0] in summary, summary
    assert "rollout halted by the health check after wave 1 (%s): 2 server(s) not applied (health_check_failed)" % names[0] in summary, summary


def test_a_pre_hook_out_of_time_and_a_gate_refusal_keep_their_hosts_unapplied(rollout):
    names, output = rollout["names"], rollout["outputs"]["gates"]
    summary = summary_of(output)
    timed_out, refused, applied = names[3:]
    assert rollout["codes"]["gates"] != 0, output  # the pre hook out of time fails its host
    for name in (timed_out, refused):
        assert rollout["after"][name]["versions"] == rollout["before"][name]["versions"], output
        assert rollout["after"][name]["jobs"] == rollout["before"][name]["jobs"], output
    assert rollout["after"][applied]["versions"] != rollout["before"][applied]["versions"], output
    assert "pre hook did not finish within 6 s (task Drain the workload (it never ends)) (pre_hook_timeout)" in summary, summary
    assert "not applied: pre-flight gate: only " in summary and "(preflight_disk_low)" in summary, summary
    assert "1 server(s) skipped by the pre-flight gate: %s (preflight_disk_low)" % refused in summary, summary
    assert "halted" not in summary, summary  # the health check passed: nothing stopped the rollout
    # the post hook follows the pre hook that ran out of time (the server is not left drained), not the gate's refusal
    assert hosts_of_task(output, "The service answers") >= {timed_out, applied}, output
    assert refused not in hosts_of_task(output, "The service answers"), output
    recap = ah.recap(output)
    assert recap[refused]["failed"] == 0 and recap[timed_out]["failed"] == 1 and recap[applied]["failed"] == 0, output


def test_a_bmc_with_a_running_task_is_skipped_by_the_gate(rollout):
    """bmc_apply.yml: exup_info (bmc_tasks) reads the emulated BMC's TaskService; a Running task there refuses the server."""
    work, lab = rollout["work"], rollout["lab"]
    bmc_repo = lab.make_repository(work / "bmc-repo")[0]
    Repository(str(bmc_repo)).add_files(build_bmc_packages(work / "bmc-packages", lab.vendor_key()), KeyRing([lab.vendor_key().public_key]), mode="pinned")
    (work / "tls").mkdir()
    bmc = redfish.RedfishBmc(redfish.BmcSystem("fw-1"), tls=make_tls_files(work / "tls")).start()
    try:
        # the emulator's own task object, as an update another tool started would leave it (the emulator state, not a mock)
        bmc._tasks["77"] = redfish._Task("77", "/redfish/v1/UpdateService", state="Running", percent=40)  # pylint: disable=protected-access
        before = bh.bmc_state(bmc.base_url, str(bmc.ca_path), bmc.user, bmc.password)["firmware"]
        host = {
            "exup_bmc_address": bmc.host,
            "exup_bmc_port": bmc.port,
            "exup_bmc_username": bmc.user,
            "exup_bmc_password": bmc.password,
            "exup_bmc_ca_path": str(bmc.ca_path),
        }
        inventory = work / "bmc-inventory.json"
        inventory.write_text(json.dumps({"all": {"children": {"bmc_managed": {"hosts": {"fw-1": host}}}}}))
        extra = {"exup_repository": str(bmc_repo), "exup_trusted_keys": [str(rollout["pem"])], "apply_allow_reboot": True}
        run = ah.run_playbook(lab, REPO_ROOT / "playbooks" / "bmc_apply.yml", extra, "-i", inventory, timeout=240)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output  # skipped, not failed
        summary = summary_of(output)
        assert "not applied: pre-flight gate: the BMC has 1 task(s) not done (/redfish/v1/TaskService/Tasks/77 Running) (preflight_queue_busy)" in summary, (
            summary
        )
        assert "1 server(s) skipped by the pre-flight gate: fw-1 (preflight_queue_busy)" in summary, summary
        assert bh.bmc_state(bmc.base_url, str(bmc.ca_path), bmc.user, bmc.password)["firmware"] == before
    finally:
        bmc.stop()
