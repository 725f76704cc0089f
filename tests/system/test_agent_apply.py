# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Applying through the agent, for real (003 §2.1, §3.5, §3.9, §4.1): exup_apply / exup_info over ssh against the lab.

One lab of uniform model A hosts (rhel9) for this module; every host plays one scenario, so the
scenarios are independent and run at once: one playbook in which each host runs its own task file
(strategy free), and three runs of playbooks/apply.yml on three more hosts, all started together.
The communication-lost test runs alone (its timing matters) on a host of its own.

Every claim is checked where it is true: the host root's version files, staged firmware, boot id,
var/lib/exup/state.json and jobs/<id>/journal.json, the agent's log, and the repository's SQLite
database (servers, events), besides the modules' results.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.tests.lab import packages
from ansible_collections.exup.fleet.tests.lab.lab import MODEL_A, REPO_ROOT, Lab
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

HOSTS = {
    "table11": "host001",
    "gate_reboot": "host002",
    "gate_failed": "host003",
    "latest_only": "host004",
    "previous": "host005",
    "uninstall": "host006",
    "idempotent": "host007",
    "lease": "host008",
    "reboot_ok": "host009",
    "reboot_failed": "host010",
    "reboot_not_allowed": "host011",
    "cancel": "host012",
}
APPLY_PLAYBOOK = REPO_ROOT / "playbooks" / "apply.yml"
DEFAULT_PLAN = ["lab-raid-controller-5.1", "lab-fc-controller-r120h-10.2", "lab-bmc-firmware-r120h-2.20", "lab-system-bios-r120h-1.2"]
# Runs after reboot-requiring packages that succeed (latest release date): §2.1.2 then forbids the restart.
FAILING = packages.failing_package("bmc-firmware", "2.30", 3, reboot=True, release_date="2026-12-01")
FAIL_PLAN = ["lab-raid-controller-5.1", "lab-fc-controller-r120h-10.2", "lab-system-bios-r120h-1.2", FAILING.id]
SLOW_FIRST = packages.slow_package("system-bios", "1.1", 6, True, release_date="2026-01-01")
SLOW_SECOND = packages.slow_package("bmc-firmware", "2.10", 1, True, release_date="2026-01-02")
# Released after the agent 1.1.0 (2026-10-05): by release date alone the agent's uninstall would run first.
LATE_UTILITY = packages.LabPackage("raid-utility", "3.2.0", "2026-12-01", (MODEL_A,), uninstall=True, tag="late")


class Fleet:
    """The module's lab, its repositories and the agent installed on every host."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.lab = Lab(directory / "lab", hosts=len(HOSTS))
        self.repos: dict[str, Path] = {}
        self.pem: Path | None = None
        self.boot_ids: dict[str, str] = {}

    def root(self, role: str) -> Path:
        return self.lab.host_root(HOSTS[role])

    def extra_vars(self) -> dict:
        return {"repos": {name: str(path) for name, path in self.repos.items()}, "pem": str(self.pem)}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    fleet = Fleet(tmp_path_factory.mktemp("agent-apply"))
    fleet.lab.up()
    try:
        default, fleet.pem = fleet.lab.make_repository(fleet.directory / "repo-default")
        fleet.repos["default"] = default
        fleet.repos["table11"] = fleet.lab.make_repository(fleet.directory / "repo-table11", packages.table11_spec(MODEL_A))[0]
        fleet.repos["fail"] = fleet.lab.make_repository(fleet.directory / "repo-fail", packages.default_spec() + [FAILING])[0]
        fleet.repos["late"] = fleet.lab.make_repository(fleet.directory / "repo-late", packages.default_spec() + [LATE_UTILITY])[0]
        fleet.repos["slow"] = fleet.lab.make_repository(fleet.directory / "repo-slow", [SLOW_FIRST, SLOW_SECOND])[0]
        play = fleet.directory / "agents.yml"
        play.write_text(ah.AGENT_INSTALL_PLAY_FLEET)
        installed = ah.run_playbook(fleet.lab, play, fleet.extra_vars())
        assert installed.returncode == 0, installed.stdout + installed.stderr
        yield fleet
    finally:
        fleet.lab.down()


# --------------------------------------------------------------------------- the scenarios (one host each)

SCENARIOS: dict[str, str] = {}  # host name -> its tasks


def scenario(role: str, *tasks: str) -> None:
    SCENARIOS[HOSTS[role]] = "".join(tasks)


def apply_task(name: str, body: str = "", ignore_errors: bool = False) -> str:
    """An exup_apply task registered as r_<name>; body holds more options (indented 4)."""
    return f"- name: exup_apply ({name})\n  exup.fleet.exup_apply:\n    poll_interval: 1\n{body}  register: r_{name}\n" + (
        "  ignore_errors: true\n" if ignore_errors else ""
    )


def info_task(name: str, body: str = "") -> str:
    return f"- name: exup_info ({name})\n  exup.fleet.exup_info:\n{body or '    register_server: false' + chr(10)}  register: r_{name}\n"


scenario("table11", apply_task("apply", "    repository: \"{{ repos.table11 }}\"\n    modules: [raid-utility, system-bios, raid-controller, bmc-firmware]\n"))

scenario(
    "gate_reboot",
    apply_task("bios", "    modules: [system-bios]\n"),
    ah.snapshot_task("snap_staged"),
    apply_task("blocked", "    modules: [raid-controller]\n", ignore_errors=True),
    ah.snapshot_task("snap_blocked"),
    ah.reboot_task("reboot"),
    ah.snapshot_task("snap_rebooted"),
    apply_task("after", "    modules: [raid-controller]\n"),
)

scenario(
    "gate_failed",
    apply_task("failed", "    repository: \"{{ repos.fail }}\"\n    modules: [system-bios, bmc-firmware]\n", ignore_errors=True),
    ah.snapshot_task("snap_failed"),
    apply_task("blocked", "    repository: \"{{ repos.fail }}\"\n    modules: [raid-controller]\n", ignore_errors=True),
    ah.snapshot_task("snap_blocked"),
    ah.reboot_task("reboot"),
    apply_task("after", "    repository: \"{{ repos.fail }}\"\n    modules: [raid-controller]\n"),
)

scenario(
    "latest_only",
    ah.snapshot_task("snap_start"),
    apply_task("not_newest", "    versions: {system-bios: '1.1'}\n", ignore_errors=True),
    ah.snapshot_task("snap_refused"),
    apply_task("older_allowed", "    versions: {system-bios: '1.1', bmc-firmware: '2.20'}\n    latest_only: false\n"),
    ah.reboot_task("reboot1"),
    ah.snapshot_task("snap_newer"),
    apply_task("bmc_down", "    versions: {bmc-firmware: '2.10'}\n    latest_only: false\n", ignore_errors=True),
    ah.snapshot_task("snap_bmc_refused"),
    apply_task("bios_down", "    versions: {system-bios: '1.0'}\n    latest_only: false\n"),
    ah.reboot_task("reboot2"),
    ah.snapshot_task("snap_end"),
)

scenario(
    "previous",
    apply_task("up", "    modules: [system-bios]\n"),
    ah.reboot_task("reboot1"),
    info_task("info_up"),
    apply_task("back", "    versions: {system-bios: previous}\n    latest_only: false\n"),
    ah.reboot_task("reboot2"),
    info_task("info_back"),
)

scenario(
    "uninstall",
    apply_task("utility", "    repository: \"{{ repos.late }}\"\n    modules: [raid-utility]\n"),
    info_task("registered", "    repository: \"{{ repos.late }}\"\n    register_server: true\n"),
    "- name: The repository's servers before the uninstall\n"
    f"  ansible.builtin.raw: \"{{{{ ansible_playbook_python }}}} {ah.HELPERS} servers {{{{ repos.late }}}}\"\n"
    "  delegate_to: localhost\n"
    "  changed_when: false\n"
    "  register: r_servers_before\n",
    apply_task("uninstall", "    repository: \"{{ repos.late }}\"\n    state: absent\n    modules: [update-agent, raid-utility]\n"),
    info_task("after", "    repository: \"{{ repos.late }}\"\n"),
)

scenario(
    "idempotent",
    ah.snapshot_task("snap_start"),
    "- name: exup_apply in check mode\n  exup.fleet.exup_apply:\n    poll_interval: 1\n  check_mode: true\n  register: r_check\n",
    ah.snapshot_task("snap_checked"),
    apply_task("first"),
    ah.snapshot_task("snap_first"),
    apply_task("second"),
    ah.snapshot_task("snap_second"),
)


class Batch:
    """What the scenario playbook and the three apply.yml runs left: results per host, outputs, return codes."""

    def __init__(self, results, outputs, codes):
        self.results = results
        self.outputs = outputs
        self.codes = codes

    def of(self, role: str) -> dict:
        return self.results[HOSTS[role]]

    def output(self, name: str) -> str:
        return self.outputs[name]


@pytest.fixture(scope="module")
def batch(fleet):
    """Run every scenario and the apply.yml cases at once (different hosts); wait for all of them."""
    work = fleet.directory / "batch"
    scenarios = ah.Scenarios(work / "scenarios", SCENARIOS)
    # One run of apply.yml for its three cases; each host has its own repository and reboot setting (inventory variables).
    cases = {"reboot_ok": ("default", True), "reboot_failed": ("fail", True), "reboot_not_allowed": ("default", False)}
    case_inventory = work / "apply-cases.yml"
    case_inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        HOSTS[role]: {"exup_repository": str(fleet.repos[repo]), "apply_allow_reboot": allowed} for role, (repo, allowed) in cases.items()
                    }
                }
            }
        )
    )
    commands = {
        "scenarios": scenarios.command(fleet.extra_vars()),
        "apply_playbook": ah.playbook_command(
            APPLY_PLAYBOOK,
            # a ':' list: the waves must still find them
            {"target": ":".join(HOSTS[role] for role in cases), "exup_trusted_keys": [str(fleet.pem)], "apply_poll_interval": 1},
            "-i",
            fleet.lab.inventory_path,
            "-i",
            case_inventory,
        ),
    }
    fleet.boot_ids = {role: fleet.lab.boot_id(host) for role, host in HOSTS.items()}
    processes = {}
    for name, argv in commands.items():
        log = open(work / f"{name}.log", "w")  # pylint: disable=consider-using-with  # closed below
        processes[name] = (subprocess.Popen(argv, env=fleet.lab.env(), stdout=log, stderr=subprocess.STDOUT), log)
    codes = {}
    for name, (process, log) in processes.items():
        try:
            codes[name] = process.wait(timeout=300)
        finally:
            log.close()
    outputs = {name: (work / f"{name}.log").read_text() for name in commands}
    return Batch(scenarios.results(), outputs, codes)


def no_error(result: dict) -> dict:
    assert not result.get("failed"), result
    return result


def assert_unchanged(before: dict, after: dict) -> None:
    """Versions, staged firmware, state.json, jobs and inbox are as they were (boot id too)."""
    for key in ("versions", "staged", "state", "jobs", "inbox", "boot_id", "agent_dir"):
        assert after[key] == before[key], key


# --------------------------------------------------------------------------- 1. Table 11 -> Table 12


def test_table11_packages_run_in_the_order_of_table12(fleet, batch):
    """003 Tables 11-12: no-reboot packages first, then by release date: PKG1, PKG3, PKG2, PKG4 (results, journal, agent.log)."""
    spec = {item.tag: item for item in packages.table11_spec(MODEL_A)}
    expected = [spec[tag].id for tag in ("t11-pkg1", "t11-pkg3", "t11-pkg2", "t11-pkg4")]
    root = fleet.root("table11")
    applied = no_error(batch.of("table11")["apply"])
    assert [row["package_id"] for row in applied["plan"]] == expected
    assert [(row["package_id"], row["status"]) for row in applied["results"]] == [(package_id, "succeeded") for package_id in expected]
    # What really ran, in which order: the journal's start and finish times, and the agent's log.
    journal = ah.journal(root, applied["job_id"])
    assert [item["package_id"] for item in journal["items"]] == expected
    items = journal["items"]
    for earlier, later in itertools.pairwise(items):
        assert earlier["started"] <= earlier["finished"] <= later["started"], (earlier, later)
    assert ah.started_order(root, applied["job_id"]) == expected
    # The no-reboot packages are current at once; the others are staged until the restart.
    host = ah.snapshot(root)
    assert host["versions"]["raid-utility"] == "3.2.0" and host["versions"]["raid-controller"] == "5.2"
    assert host["versions"]["system-bios"] == "1.0" and host["versions"]["bmc-firmware"] == "2.00"
    assert host["staged"] == {ah.VERSION_FILES["system-bios"]: "1.3", ah.VERSION_FILES["bmc-firmware"]: "2.30"}
    modules = host["state"]["modules"]
    assert (modules["system-bios"]["block"], modules["system-bios"]["staged"]) == ("reboot_required", "1.3")
    assert (modules["bmc-firmware"]["block"], modules["bmc-firmware"]["staged"]) == ("reboot_required", "2.30")
    assert host["boot_id"] == fleet.boot_ids["table11"]
    events = [(code, detail) for code, level, detail in ah.events(fleet.repos["table11"], HOSTS["table11"])]
    assert events[0] == ("apply_started", {"packages": expected, "server": HOSTS["table11"]})
    assert events[-1][0] == "apply_finished" and events[-1][1]["results"] == {package_id: "succeeded" for package_id in expected}


# --------------------------------------------------------------------------- 2. communication lost (§4.1)

LEASE_PLAY = """\
---
- name: Apply two slow reboot-requiring packages (the playbook is killed while the first runs)
  hosts: {host}
  gather_facts: false
  tasks:
    - name: Apply
      exup.fleet.exup_apply:
        repository: "{{{{ repos.slow }}}}"
        trusted_keys: ["{{{{ pem }}}}"]
        host_root: "{{{{ exup_host_root }}}}"
        modules: [system-bios, bmc-firmware]
        lease_seconds: 3
        poll_interval: 1
      register: applied
    - name: Restart when allowed (never reached)
      ansible.builtin.reboot:
        reboot_command: "{{{{ exup_reboot_command }}}}"
        boot_time_command: "{{{{ exup_boot_time_command }}}}"
      when: applied.reboot_allowed
"""


def test_communication_lost_finishes_the_running_package_and_cancels_the_rest(fleet, tmp_path):
    """003 §4.1: the controller dies while package 1 runs; it finishes, package 2 is cancelled, nothing reboots."""
    host = HOSTS["lease"]
    root = fleet.root("lease")
    boot_id = fleet.lab.boot_id(host)
    jobs_before = set(ah.snapshot(root)["jobs"])
    play = tmp_path / "lease.yml"
    play.write_text(LEASE_PLAY.format(host=host))
    log = open(tmp_path / "lease.log", "w")  # pylint: disable=consider-using-with  # closed in finally
    process = subprocess.Popen(ah.playbook_command(play, fleet.extra_vars()), env=fleet.lab.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        job_id = wait_for_first_package(root, jobs_before)
        killed = ah.kill_tree(process.pid)  # the controller is gone: no more polls, no lease renewal
        killed_at = time.monotonic()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            ah.kill_tree(process.pid)
            process.wait(timeout=10)
        log.close()
    assert len(killed) > 1  # ansible-playbook and its worker (in a session of its own)
    journal = ah.wait_for(
        lambda: (ah.read_json(root / ah.STATE_DIR / "jobs" / job_id / "journal.json") or {}).get("state") == "finished" and ah.journal(root, job_id),
        30,
        interval=0.2,
        what="the job to finish",
    )
    first, second = journal["items"]
    assert (first["package_id"], first["status"], first["exit_code"]) == (SLOW_FIRST.id, "succeeded", 0)
    assert (second["package_id"], second["status"], second["cause"]) == (SLOW_SECOND.id, "cancelled", "communication with the manager lost")
    assert "started" not in second
    assert first["finished"] - first["started"] >= 5.5  # it really ran to its end after the controller died
    assert not journal.get("recovered")
    # Give a wrongly surviving controller time to reboot the host or start package 2: nothing happens.
    time.sleep(max(0.0, 10 - (time.monotonic() - killed_at)))
    host_now = ah.snapshot(root)
    assert host_now["boot_id"] == boot_id
    assert host_now["staged"] == {ah.VERSION_FILES["system-bios"]: "1.1"}  # package 2 (bmc-firmware 2.10) left no trace
    assert host_now["versions"]["bmc-firmware"] == "2.00" and host_now["versions"]["system-bios"] == "1.0"
    assert "bmc-firmware" not in host_now["state"]["modules"]
    assert not list((root / ah.STATE_DIR / "jobs" / job_id / "output").glob("1.log"))
    codes = [code for code, level, detail in ah.events(fleet.repos["slow"], host)]
    assert codes == ["apply_started"], codes  # the killed controller recorded no outcome
    # A new query sees what the agent left: module 1 waits for a restart, module 2 is still to update, no job runs.
    play = tmp_path / "info.yml"
    play.write_text(f"""\
---
- name: Query after the loss
  hosts: {host}
  gather_facts: false
  tasks:
    - name: Query
      exup.fleet.exup_info:
        repository: "{{{{ repos.slow }}}}"
        host_root: "{{{{ exup_host_root }}}}"
      register: info
    - name: Save it
      ansible.builtin.copy:
        content: "{{{{ info | to_json }}}}"
        dest: {tmp_path}/info.json
        mode: "0600"
      delegate_to: localhost
""")
    ran = ah.run_playbook(fleet.lab, play, fleet.extra_vars())
    assert ran.returncode == 0, ran.stdout + ran.stderr
    info = ah.read_json(tmp_path / "info.json")
    bios, bmc = info["modules"]["system-bios"], info["modules"]["bmc-firmware"]
    assert (bios["current"], bios["status"], bios["block"], bios["staged"]) == ("1.0", "reboot_required", "reboot_required", "1.1")
    # Table 8 "cancelled" for what the lost job cancelled; for the server that is still an update available.
    assert (bmc["current"], bmc["status"], bmc["block"]) == ("2.00", "cancelled", None)
    assert info["active_job"] is None
    assert info["server_status"] == "update_available"  # Table 10: update available outranks reboot required
    # The query also logged the outcome nobody could report when the controller died.
    late = [(code, detail) for code, level, detail in ah.events(fleet.repos["slow"], host) if detail.get("job_id") == job_id]
    assert [code for code, detail in late] == ["apply_cancelled"], late
    assert late[0][1]["reported_late"] is True
    assert late[0][1]["results"] == {SLOW_FIRST.id: "succeeded", SLOW_SECOND.id: "cancelled"}


def wait_for_first_package(root, jobs_before) -> str:
    """The id of the one new job on the host, once its first package runs."""

    def first_running():
        jobs = set(ah.snapshot(root)["jobs"]) - jobs_before
        if len(jobs) != 1:
            return None
        journal = ah.read_json(root / ah.STATE_DIR / "jobs" / next(iter(jobs)) / "journal.json")
        return journal and journal["items"][0]["status"] == "running" and journal["job_id"]

    return ah.wait_for(first_running, 90, what="the first package to start")


CANCEL_PLAY = """\
---
- name: Cancel what has not started
  hosts: {host}
  gather_facts: false
  tasks:
    - name: Cancel
      exup.fleet.exup_apply:
        repository: "{{{{ repos.slow }}}}"
        trusted_keys: ["{{{{ pem }}}}"]
        host_root: "{{{{ exup_host_root }}}}"
        state: cancelled
      register: cancelled
    - name: Save it
      ansible.builtin.copy:
        content: "{{{{ cancelled | to_json }}}}"
        dest: {out}
        mode: "0600"
      delegate_to: localhost
"""


def test_cancel_stops_what_has_not_started(fleet, tmp_path):
    """003 §3.5.1 (c): a cancel request cancels the packages that have not started; the running one finishes."""
    host = HOSTS["cancel"]
    root = fleet.root("cancel")
    jobs_before = set(ah.snapshot(root)["jobs"])
    play = tmp_path / "apply.yml"
    play.write_text(LEASE_PLAY.format(host=host).replace("lease_seconds: 3", "lease_seconds: 60"))
    log = open(tmp_path / "apply.log", "w")  # pylint: disable=consider-using-with  # closed below
    process = subprocess.Popen(ah.playbook_command(play, fleet.extra_vars()), env=fleet.lab.env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        job_id = wait_for_first_package(root, jobs_before)
        cancel = tmp_path / "cancel.yml"
        cancel.write_text(CANCEL_PLAY.format(host=host, out=tmp_path / "cancel.json"))
        ran = ah.run_playbook(fleet.lab, cancel, fleet.extra_vars())
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert process.wait(timeout=120) == 0, (tmp_path / "apply.log").read_text()
    finally:
        if process.poll() is None:
            ah.kill_tree(process.pid)
            process.wait(timeout=10)
        log.close()
    answer = ah.read_json(tmp_path / "cancel.json")
    assert answer["changed"] and answer["job_id"] == job_id, answer
    journal = ah.journal(root, job_id)
    first, second = journal["items"]
    assert (first["status"], first["exit_code"]) == ("succeeded", 0)
    assert (second["status"], second["cause"]) == ("cancelled", "cancelled by the user")
    assert "started" not in second
    assert ah.snapshot(root)["versions"]["bmc-firmware"] == "2.00"
    codes = [code for code, level, detail in ah.events(fleet.repos["slow"], host) if detail.get("job_id") == job_id]
    assert codes == ["apply_cancelled"], codes


# --------------------------------------------------------------------------- 3. gating until the restart (§2.1.5-6)


def test_reboot_required_blocks_until_the_restart(fleet, batch):
    run = batch.of("gate_reboot")
    bios = no_error(run["bios"])
    assert [(row["module_id"], row["status"], row["staged"]) for row in bios["results"]] == [("system-bios", "succeeded", True)]
    blocked = run["blocked"]
    assert blocked["failed"] and blocked["error"] == "blocked_until_reboot", blocked
    assert "must restart" in blocked["msg"] and "system-bios (reboot required)" in blocked["msg"], blocked["msg"]
    assert run["snap_staged"]["staged"] == {ah.VERSION_FILES["system-bios"]: "1.2"}
    assert_unchanged(run["snap_staged"], run["snap_blocked"])
    assert run["snap_blocked"]["versions"]["raid-controller"] == "5.0"
    # The restart activates the staged BIOS and lifts the block.
    assert run["reboot"]["rebooted"], run["reboot"]
    rebooted = run["snap_rebooted"]
    assert rebooted["boot_id"] != run["snap_blocked"]["boot_id"]
    assert rebooted["versions"]["system-bios"] == "1.2" and rebooted["staged"] == {}
    after = no_error(run["after"])
    assert [(row["package_id"], row["status"]) for row in after["results"]] == [("lab-raid-controller-5.1", "succeeded")]
    assert ah.snapshot(fleet.root("gate_reboot"))["versions"]["raid-controller"] == "5.1"


def test_apply_failed_blocks_until_the_restart(fleet, batch):
    """A failed package: failed=true, error apply_failed, no restart allowed (§2.1.2); nothing more until the restart."""
    run = batch.of("gate_failed")
    failed = run["failed"]
    assert failed["failed"] and failed["error"] == "apply_failed", failed
    assert [(row["package_id"], row["status"]) for row in failed["results"]] == [("lab-system-bios-r120h-1.2", "succeeded"), (FAILING.id, "failed")]
    assert "exit status 3" in failed["results"][1]["cause"] and FAILING.id in failed["msg"]
    assert failed["reboot_required"] and not failed["reboot_allowed"]  # a reboot-requiring package succeeded, but not every one
    snap = run["snap_failed"]
    assert snap["versions"]["bmc-firmware"] == "2.00" and snap["staged"] == {ah.VERSION_FILES["system-bios"]: "1.2"}
    assert snap["state"]["modules"]["bmc-firmware"]["block"] == "apply_failed"
    assert snap["state"]["modules"]["system-bios"]["block"] == "reboot_required"
    blocked = run["blocked"]
    assert blocked["failed"] and blocked["error"] == "blocked_until_reboot", blocked
    assert "bmc-firmware (apply failed)" in blocked["msg"] and "system-bios (reboot required)" in blocked["msg"], blocked["msg"]
    assert_unchanged(snap, run["snap_blocked"])
    assert run["reboot"]["rebooted"], run["reboot"]
    after = no_error(run["after"])
    assert [(row["package_id"], row["status"]) for row in after["results"]] == [("lab-raid-controller-5.1", "succeeded")]
    host = ah.snapshot(fleet.root("gate_failed"))
    assert (host["versions"]["system-bios"], host["versions"]["bmc-firmware"], host["versions"]["raid-controller"]) == ("1.2", "2.00", "5.1")
    found = [(code, level) for code, level, detail in ah.events(fleet.repos["fail"], HOSTS["gate_failed"]) if code.startswith("apply_")]
    assert found[:2] == [("apply_started", "normal"), ("apply_failed", "error")], found


# --------------------------------------------------------------------------- 4. latest only, downgrade (§2.1.1)


def test_latest_only_and_downgrade(fleet, batch):
    run = batch.of("latest_only")
    refused = run["not_newest"]
    assert refused["failed"] and refused["error"] == "latest_only", refused
    assert "system-bios 1.1 is not the newest" in refused["msg"] and "latest_only" in refused["msg"]
    assert_unchanged(run["snap_start"], run["snap_refused"])
    older = no_error(run["older_allowed"])
    assert {row["package_id"]: row["status"] for row in older["results"]} == {
        "lab-system-bios-r120h-1.1": "succeeded",
        "lab-bmc-firmware-r120h-2.20": "succeeded",
    }
    newer = run["snap_newer"]
    assert (newer["versions"]["system-bios"], newer["versions"]["bmc-firmware"]) == ("1.1", "2.20")
    bmc_down = run["bmc_down"]
    assert bmc_down["failed"] and bmc_down["error"] == "downgrade_not_supported", bmc_down
    assert "does not support downgrade from 2.20 to 2.10" in bmc_down["msg"]
    assert_unchanged(newer, run["snap_bmc_refused"])
    bios_down = no_error(run["bios_down"])
    assert [(row["version_before"], row["version_target"], row["status"]) for row in bios_down["results"]] == [("1.1", "1.0", "succeeded")]
    assert run["snap_end"]["versions"]["system-bios"] == "1.0"
    assert run["snap_end"]["versions"]["bmc-firmware"] == "2.20"


# --------------------------------------------------------------------------- 5. previous generation [*] (§3.5.1 step 6)


def test_previous_generation_is_marked_and_restored(fleet, batch):
    run = batch.of("previous")
    assert [row["to_version"] for row in no_error(run["up"])["plan"]] == ["1.2"]
    bios = no_error(run["info_up"])["modules"]["system-bios"]
    assert (bios["current"], bios["previous"]) == ("1.2", "1.0")
    marks = {row["version"]: (row["previous_generation"], row["label"]) for row in bios["versions"]}
    assert marks == {"1.2": (False, "1.2"), "1.1": (False, "1.1"), "1.0": (True, "1.0 [*]")}
    back = no_error(run["back"])
    assert [(row["package_id"], row["from_version"], row["to_version"]) for row in back["plan"]] == [("lab-system-bios-r120h-1.0", "1.2", "1.0")]
    assert [row["status"] for row in back["results"]] == ["succeeded"]
    assert run["reboot2"]["rebooted"]
    bios = no_error(run["info_back"])["modules"]["system-bios"]
    assert (bios["current"], bios["previous"]) == ("1.0", "1.2")
    assert [row["label"] for row in bios["versions"]] == ["1.2 [*]", "1.1", "1.0"]
    assert ah.snapshot(fleet.root("previous"))["versions"]["system-bios"] == "1.0"


# --------------------------------------------------------------------------- 6. uninstall order (§2.1.7, §3.9)


def test_uninstall_runs_the_agent_last_and_ends_management(fleet, batch):
    run = batch.of("uninstall")
    host = HOSTS["uninstall"]
    root = fleet.root("uninstall")
    assert [row["status"] for row in no_error(run["utility"])["results"]] == ["succeeded"]
    assert no_error(run["registered"])["registered"]
    assert host in json.loads(run["servers_before"]["stdout"])
    uninstall = no_error(run["uninstall"])
    plan = [(row["module_id"], row["action"], row["release_date"]) for row in uninstall["plan"]]
    assert plan == [("raid-utility", "uninstall", LATE_UTILITY.release_date), ("update-agent", "uninstall", "2026-10-05")]  # not by date
    assert [(row["module_id"], row["status"]) for row in uninstall["results"]] == [("raid-utility", "succeeded"), ("update-agent", "succeeded")]
    journal = ah.journal(root, uninstall["job_id"])
    utility, agent = journal["items"]
    assert utility["module_id"] == "raid-utility" and utility["finished"] <= agent["started"]
    assert ah.started_order(root, uninstall["job_id"]) == [LATE_UTILITY.id, "lab-update-agent-1.1.0"]
    after = no_error(run["after"])
    assert after["agent"]["installed"] is False and after["server_status"] == "agent_not_installed"
    host_now = ah.snapshot(root)
    assert not host_now["agent_dir"] and "raid-utility" not in host_now["versions"]
    assert (root / ah.STATE_DIR / "jobs" / uninstall["job_id"] / "journal.json").exists()  # /var/lib/exup outlives the agent
    assert host not in ah.servers(fleet.repos["late"])
    codes = [code for code, level, detail in ah.events(fleet.repos["late"], host)]
    assert codes.index("uninstall_started") < codes.index("uninstall_finished"), codes


# --------------------------------------------------------------------------- 7. reboot only when allowed (§2.1.2), playbooks/apply.yml


def test_apply_playbook_reboots_only_when_allowed(fleet, batch):
    """playbooks/apply.yml: allowed + all succeeded + a reboot-requiring package -> restart; a failure or not allowed -> none."""
    output = batch.output("apply_playbook")
    assert batch.codes["apply_playbook"] != 0, output  # apply.yml fails the server where something failed (and only that one)
    recap = ah.recap(output)
    assert {role: recap[HOSTS[role]]["failed"] for role in ("reboot_ok", "reboot_failed", "reboot_not_allowed")} == {
        "reboot_ok": 0,
        "reboot_failed": 1,
        "reboot_not_allowed": 0,
    }, output

    ok_root = fleet.root("reboot_ok")
    host = ah.snapshot(ok_root)
    assert host["boot_id"] != fleet.boot_ids["reboot_ok"], output
    assert host["versions"]["system-bios"] == "1.2" and host["versions"]["bmc-firmware"] == "2.20" and host["staged"] == {}
    journal = ah.journal(ok_root, host["jobs"][-1])
    assert [(item["package_id"], item["status"]) for item in journal["items"]] == [(package_id, "succeeded") for package_id in DEFAULT_PLAN]

    failed_root = fleet.root("reboot_failed")
    host = ah.snapshot(failed_root)
    assert host["boot_id"] == fleet.boot_ids["reboot_failed"], output
    journal = ah.journal(failed_root, host["jobs"][-1])
    assert [(item["package_id"], item["status"]) for item in journal["items"]] == list(zip(FAIL_PLAN, ["succeeded"] * 3 + ["failed"], strict=True))
    assert host["staged"][ah.VERSION_FILES["system-bios"]] == "1.2"  # needs the restart that §2.1.2 does not allow

    not_allowed_root = fleet.root("reboot_not_allowed")
    host = ah.snapshot(not_allowed_root)
    assert host["boot_id"] == fleet.boot_ids["reboot_not_allowed"], output
    assert host["versions"]["system-bios"] == "1.0" and host["staged"][ah.VERSION_FILES["system-bios"]] == "1.2"
    journal = ah.journal(not_allowed_root, host["jobs"][-1])
    assert [item["status"] for item in journal["items"]] == ["succeeded"] * 4  # the rule allowed it; the operator did not


# --------------------------------------------------------------------------- 8. idempotence and check mode


def test_second_apply_changes_nothing_and_check_mode_only_plans(fleet, batch):
    run = batch.of("idempotent")
    check = no_error(run["check"])
    assert check["changed"] and check["results"] == [] and "job_id" not in check
    assert [row["package_id"] for row in check["plan"]] == DEFAULT_PLAN
    assert_unchanged(run["snap_start"], run["snap_checked"])
    assert run["snap_checked"]["jobs"] == [] and run["snap_checked"]["staged"] == {}
    first = no_error(run["first"])
    assert [row["package_id"] for row in first["plan"]] == DEFAULT_PLAN  # the check showed the real plan
    assert first["changed"] and [row["status"] for row in first["results"]] == ["succeeded"] * 4
    assert len(run["snap_first"]["jobs"]) == 1
    second = no_error(run["second"])
    assert not second["changed"] and second["plan"] == [] and second["results"] == [] and "job_id" not in second
    assert second["skipped_modules"]["raid-controller"] == "already at 5.1"
    assert "staged" in second["skipped_modules"]["system-bios"]
    assert_unchanged(run["snap_first"], run["snap_second"])
    codes = [code for code, level, detail in ah.events(fleet.repos["default"], HOSTS["idempotent"]) if code.startswith("apply_")]
    assert codes == ["apply_started", "apply_finished"], codes  # one job: neither the check nor the second apply ran one
