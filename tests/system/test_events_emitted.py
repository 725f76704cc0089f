# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The error events of 003 Table 19 on the agent path, for real (docs/events.md): playbooks over the lab's ssh.

Nothing is mocked. A server that cannot be reached is the lab host asked on a port where nothing
listens; a status poll that fails is every new ssh session of the lab refused while the job runs
(the lab's login needs its view file: it is moved away and back). What was logged is read from the
repository's SQLite database.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import IO

import pytest

from ansible_collections.exup.fleet.tests.lab import packages
from ansible_collections.exup.fleet.tests.lab.lab import Lab
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

QUERY_HOST = "host001"
POLL_HOST = "host002"
SLOW_BIOS = packages.slow_package("system-bios", "1.9", 8, False, release_date="2026-12-01")  # the newest: the one applied
PLAYBOOK_TIMEOUT = 300

PLAY_HEAD = """\
---
- name: Events of 003 Table 19
  hosts: {host}
  gather_facts: false
  module_defaults:
    group/exup.fleet.all:
      host_root: "{{{{ exup_host_root }}}}"
      repository: "{{{{ repo }}}}"
      trusted_keys: ["{{{{ pem }}}}"]
  tasks:
"""

QUERY_TASKS = """\
    - name: Query (the boot id before a restart)
      exup.fleet.exup_info:
      register: r_before
    - name: Same boot id after a restart that did not happen
      exup.fleet.exup_info:
        boot_id_before_reboot: "{{ r_before.facts.boot_id }}"
      register: r_same
    - name: Another boot id (the restart happened)
      exup.fleet.exup_info:
        boot_id_before_reboot: not-this-boot
      register: r_other
    - name: The BMC does not answer (nothing listens on port 9), the OS does
      exup.fleet.exup_info:
        via: bmc
        bmc_address: 127.0.0.1
        bmc_port: 9
        bmc_username: admin
        bmc_password: not-used
        bmc_validate_certs: false
        bmc_timeout: 5
        model: Express5800/R120h-1M
      failed_when: false
      register: r_bmc
    - name: The server cannot be reached (nothing listens on port 1)
      vars:
        ansible_port: 1
      ignore_unreachable: true
      block:
        - name: Query after a restart, no answer
          exup.fleet.exup_info:
            boot_id_before_reboot: "{{ r_before.facts.boot_id }}"
          failed_when: false
          register: r_unreachable
        - name: Neither the BMC nor the OS answers
          exup.fleet.exup_info:
            via: bmc
            bmc_address: 127.0.0.1
            bmc_port: 9
            bmc_username: admin
            bmc_password: not-used
            bmc_validate_certs: false
            bmc_timeout: 5
            model: Express5800/R120h-1M
          failed_when: false
          register: r_both
        - name: Cancel, no answer
          exup.fleet.exup_apply:
            state: cancelled
          failed_when: false
          register: r_cancel
        - name: Collect the agent logs, no answer
          exup.fleet.exup_agent:
            state: logs_collected
            logs_dest: "{{ logs_dest }}"
          failed_when: false
          register: r_logs
    - name: Save what the tasks returned
      ansible.builtin.copy:
        content: "{{ {'before': r_before, 'same': r_same, 'other': r_other, 'bmc': r_bmc, 'unreachable': r_unreachable, 'both': r_both,
                      'cancel': r_cancel, 'logs': r_logs} | to_json }}"
        dest: "{{ result_path }}"
        mode: "0600"
      delegate_to: localhost
"""

APPLY_TASKS = """\
    - name: Apply the slow BIOS package
      exup.fleet.exup_apply:
        modules: [system-bios]
        poll_interval: 1
      failed_when: false
      register: r_apply
    - name: Save what exup_apply returned
      ansible.builtin.copy:
        content: "{{ r_apply | to_json }}"
        dest: "{{ result_path }}"
        mode: "0600"
      delegate_to: localhost
"""

INFO_TASKS = """\
    - name: Query again (reports the job's outcome the controller did not see)
      exup.fleet.exup_info:
      register: r_info
"""


class World:
    def __init__(self, directory: Path):
        self.directory = directory
        self.lab = Lab(directory / "lab", hosts=2)
        self.repo = None
        self.pem = None
        #: each running playbook's log file, closed by finish()
        self.logs: dict[subprocess.Popen[bytes], IO[str]] = {}

    def playbook(self, name: str, host: str, tasks: str, **extra) -> subprocess.Popen[bytes]:
        path = self.directory / f"{name}.yml"
        path.write_text(PLAY_HEAD.format(host=host) + tasks)
        extra_vars = dict(repo=str(self.repo), pem=str(self.pem), **extra)
        argv = ah.playbook_command(path, extra_vars)
        log = open(self.directory / f"{name}.log", "w")  # pylint: disable=consider-using-with  # closed by finish()
        process = subprocess.Popen(argv, env=self.lab.env(), stdout=log, stderr=subprocess.STDOUT)
        self.logs[process] = log
        return process

    def finish(self, process: subprocess.Popen[bytes], name: str) -> tuple[int, str]:
        try:
            code = process.wait(timeout=PLAYBOOK_TIMEOUT)
        finally:
            self.logs.pop(process).close()
        return code, (self.directory / f"{name}.log").read_text()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("events"))
    world.lab.up()
    try:
        world.repo, world.pem = world.lab.make_repository(world.directory / "repo", packages.default_spec() + [SLOW_BIOS])
        install = world.playbook(
            "agents",
            "managed",
            """\
    - name: Install the agent from the repository
      exup.fleet.exup_agent:
        license_accepted: true
""",
        )
        code, output = world.finish(install, "agents")
        assert code == 0, output
        yield world
    finally:
        world.lab.down()


def new_events(repo, server: str, after: int) -> list:
    """[(code, level, message, detail)] of one server with an id above ``after``."""
    rows = ah.query(repo, "SELECT code, level, message, detail FROM events WHERE id > ? ORDER BY id", after)
    return [(code, level, message, json.loads(detail)) for code, level, message, detail in rows if json.loads(detail).get("server") == server]


def last_event_id(repo) -> int:
    return ah.query(repo, "SELECT COALESCE(MAX(id), 0) FROM events")[0][0]


def test_unreachable_agent_logs_version_query_failed(world):
    """Table 19: version query failed (agent, BMC, both), restart failed, cancel failed, agent logs failed; and the same boot id is a failed restart."""
    start = last_event_id(world.repo)
    result_path = world.directory / "query-results.json"
    before_root = ah.snapshot(world.lab.host_root(QUERY_HOST))
    run = world.playbook("query", QUERY_HOST, QUERY_TASKS, result_path=str(result_path), logs_dest=str(world.directory / "logs"))
    code, output = world.finish(run, "query")
    assert code == 0, output
    results = json.loads(result_path.read_text())
    assert results["same"]["reboot_failed"] is True and results["other"]["reboot_failed"] is False, output
    assert "reboot_failed" not in results["before"]
    for name in ("unreachable", "cancel", "logs"):
        assert results[name].get("unreachable") and results[name]["msg"], results[name]
    assert ah.snapshot(world.lab.host_root(QUERY_HOST)) == before_root  # queries and failed calls changed nothing on the host
    assert not (world.directory / "logs").exists()
    logged = [(code, level, detail.get("via"), detail.get("error")) for code, level, _message, detail in new_events(world.repo, QUERY_HOST, start)]
    assert logged == [
        ("versions_queried", "normal", None, None),
        ("reboot_failed", "error", "agent", None),
        ("versions_queried", "normal", None, None),
        ("versions_queried", "normal", None, None),
        ("version_query_failed", "error", "bmc", "bmc_unreachable"),
        ("version_query_failed", "error", "agent", "communication_failed"),
        ("reboot_failed", "error", "agent", "communication_failed"),
        ("version_query_failed", "error", "both", "bmc_unreachable"),
        ("cancel_unavailable", "error", None, "communication_failed"),
        ("agent_logs_failed", "error", None, "communication_failed"),
    ], output
    assert results["bmc"]["error"] == "bmc_unreachable" and results["both"]["error"] == "bmc_unreachable", results
    messages = {}
    for code, _level, message, detail in new_events(world.repo, QUERY_HOST, start):
        messages[code if code != "version_query_failed" else detail["via"]] = message
    head = "Querying the versions of the managed server failed. ("
    assert messages["agent"].startswith(head + "could not connect to the exup agent: ")
    assert messages["bmc"].startswith(head + "could not connect to the management controller: BMC 127.0.0.1 ")
    assert messages["both"].startswith(head + "could not connect to the exup agent nor to the management controller: BMC 127.0.0.1 ")
    assert messages["cancel_unavailable"].startswith("Cancelling the update could not be requested. (")
    assert messages["agent_logs_failed"].startswith("Collecting the agent logs failed. (")


def test_restart_that_did_not_happen_logs_reboot_failed(world):
    """The same boot id after a restart was asked for: reboot_failed with the boot id, once per query that saw it."""
    rows = [detail for code, _level, _message, detail in new_events(world.repo, QUERY_HOST, 0) if code == "reboot_failed"]
    boot_id = world.lab.boot_id(QUERY_HOST)
    assert rows[0] == {"server": QUERY_HOST, "boot_id": boot_id, "via": "agent"}
    assert rows[1]["error"] == "communication_failed" and rows[1]["via"] == "agent"


def test_status_poll_failing_logs_progress_unavailable(world):
    """A status poll that fails while the job runs is progress_unavailable, not apply_failed; the job's own outcome is logged later."""
    start = last_event_id(world.repo)
    root = world.lab.host_root(POLL_HOST)
    jobs_before = set(ah.snapshot(root)["jobs"])
    result_path = world.directory / "apply-result.json"
    run = world.playbook("apply", POLL_HOST, APPLY_TASKS, result_path=str(result_path))
    view = world.lab.view_conf_path
    away = view.with_name(view.name + ".away")
    try:
        ah.wait_for(lambda: set(ah.snapshot(root)["jobs"]) - jobs_before, timeout=120, what="the job to start")
        view.rename(away)  # every new ssh session of the lab now fails: the next status poll cannot be answered
        ah.wait_for(
            lambda: any(code == "progress_unavailable" for code, *_rest in new_events(world.repo, POLL_HOST, start)),
            timeout=120,
            what="progress_unavailable to be logged",
        )
    finally:
        if away.exists():
            away.rename(view)
    code, output = world.finish(run, "apply")
    assert code == 0, output
    result = json.loads(result_path.read_text())
    assert result["msg"] and "results" not in result, result  # the task failed (failed_when: false keeps the play going)
    (job_id,) = set(ah.snapshot(root)["jobs"]) - jobs_before
    logged = new_events(world.repo, POLL_HOST, start)
    assert [code for code, *_rest in logged] == ["apply_started", "progress_unavailable"], output
    _code, level, message, detail = logged[1]
    assert level == "error" and message.startswith("Progress of the update could not be fetched. (") and detail["job"] == job_id
    # the job goes on without the controller; the next query logs its outcome (reported late)
    ah.wait_for(lambda: ah.journal(root, job_id).get("state") == "finished", timeout=120, what="the job to finish")
    info = world.playbook("info", POLL_HOST, INFO_TASKS)
    code, output = world.finish(info, "info")
    assert code == 0, output
    late = [(code, detail) for code, _level, _message, detail in new_events(world.repo, POLL_HOST, start) if code == "apply_finished"]
    assert len(late) == 1 and late[0][1]["job_id"] == job_id and late[0][1]["reported_late"] is True, output
