# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent under faults, for real (issue 8 item 8): the runner killed with SIGKILL while a package script runs.

exup_apply runs over the lab's ssh; the test kills the agent's runner on the host by its pid (from the
job's journal) while the slow package's install script runs. exup_apply and exup_info must report the
package as applying until the script really ends, then its real outcome, and never advise a restart
meanwhile. The bounded output and the full disk are covered by the unit tests of
tests/unit/plugins/module_utils/_exup/test_agent_faults.py (a real tmpfs there).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent
from ansible_collections.exup.fleet.tests.lab import packages
from ansible_collections.exup.fleet.tests.lab.lab import Lab
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

HOST = "host001"
SLOW = packages.slow_package("system-bios", "1.1", 12, True, release_date="2026-01-01")

APPLY_PLAY = """\
---
- name: Apply a slow package (its runner is killed while it runs)
  hosts: {host}
  gather_facts: false
  tasks:
    - name: Apply
      exup.fleet.exup_apply:
        repository: "{{{{ repo }}}}"
        trusted_keys: ["{{{{ pem }}}}"]
        host_root: "{{{{ exup_host_root }}}}"
        modules: [system-bios]
        poll_interval: 1
      register: applied
    - name: Save it
      ansible.builtin.copy:
        content: "{{{{ applied | to_json }}}}"
        dest: {out}
        mode: "0600"
      delegate_to: localhost
"""

INFO_PLAY = """\
---
- name: Query while the orphaned script runs
  hosts: {host}
  gather_facts: false
  tasks:
    - name: Query
      exup.fleet.exup_info:
        repository: "{{{{ repo }}}}"
        host_root: "{{{{ exup_host_root }}}}"
        register_server: false
      register: info
    - name: Save it
      ansible.builtin.copy:
        content: "{{{{ info | to_json }}}}"
        dest: {out}
        mode: "0600"
      delegate_to: localhost
"""

AGENT_PLAY = """\
---
- name: Install the agent
  hosts: managed
  gather_facts: false
  tasks:
    - name: Install the agent from the repository
      exup.fleet.exup_agent:
        repository: "{{ default_repo }}"
        trusted_keys: ["{{ pem }}"]
        license_accepted: true
        host_root: "{{ exup_host_root }}"
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("agent-faults")
    lab = Lab(directory / "lab", hosts=1)
    lab.up()
    try:
        default, pem = lab.make_repository(directory / "repo-default")
        slow = lab.make_repository(directory / "repo-slow", [SLOW])[0]
        extra = {"default_repo": str(default), "repo": str(slow), "pem": str(pem)}
        play = directory / "agent.yml"
        play.write_text(AGENT_PLAY)
        installed = ah.run_playbook(lab, play, extra)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        yield lab, extra
    finally:
        lab.down()


def running_script(root: Path, jobs_before: set):
    """The new job's journal once its first package's script runs under the wrapper (pid recorded)."""
    jobs = set(ah.snapshot(root)["jobs"]) - jobs_before
    if len(jobs) != 1:
        return None
    journal = ah.read_json(root / ah.STATE_DIR / "jobs" / next(iter(jobs)) / "journal.json")
    return journal if journal and journal["items"][0].get("script_pid") else None


def test_a_killed_runner_leaves_the_script_applying_until_it_ends_then_its_outcome(lab, tmp_path):
    """Before: exup_apply said apply_failed (restart the server) at once, while the install script still ran."""
    lab, extra = lab
    root = lab.host_root(HOST)
    jobs_before = set(ah.snapshot(root)["jobs"])
    play = tmp_path / "apply.yml"
    play.write_text(APPLY_PLAY.format(host=HOST, out=tmp_path / "apply.json"))
    log = open(tmp_path / "apply.log", "w")  # pylint: disable=consider-using-with  # closed in finally
    process = subprocess.Popen(ah.playbook_command(play, extra), env=lab.env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        journal = ah.wait_for(lambda: running_script(root, jobs_before), 90, interval=0.1, what="the package script to start")
        os.kill(journal["runner_pid"], signal.SIGKILL)  # the runner only: the script runs on in its own session
        killed_at = time.monotonic()
        item = journal["items"][0]
        # While the script runs, a query sees it applying, with no block (no restart advice).
        info_play = tmp_path / "info.yml"
        info_play.write_text(INFO_PLAY.format(host=HOST, out=tmp_path / "info.json"))
        ran = ah.run_playbook(lab, info_play, extra)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        queried_at = time.monotonic()
        assert process.wait(timeout=120) == 0, (tmp_path / "apply.log").read_text()
    finally:
        if process.poll() is None:
            ah.kill_tree(process.pid)
            process.wait(timeout=10)
        log.close()
    assert queried_at - killed_at < SLOW.sleep - 2, "the query ran after the script ended: it proved nothing"
    info = ah.read_json(tmp_path / "info.json")
    bios = info["modules"]["system-bios"]
    assert (bios["status"], bios["block"]) == ("applying", None), bios
    assert info["active_job"]["runner_lost"] is True and info["active_job"]["items"][0]["status"] == "running"
    applied = ah.read_json(tmp_path / "apply.json")
    assert not applied.get("failed"), applied
    result = applied["results"][0]
    assert (result["package_id"], result["status"], result["outcome"]) == (SLOW.id, "succeeded", "finished_after_runner_died")
    assert "restart" not in applied["msg"]
    # The host: the script ran to its end after the runner died and its wrapper wrote the exit status; reads wrote nothing,
    # so the journal on disk still shows the item running, and the agent's view of it (what exup_host status answers) is the outcome.
    job_dir = root / ah.STATE_DIR / "jobs" / journal["job_id"]
    assert ah.read_json(job_dir / "output" / "0.status")["exit_code"] == 0
    assert ah.journal(root, journal["job_id"])["items"][0]["status"] == "running"
    view = agent.Host(str(root)).journal(journal["job_id"])
    first = view["items"][0]
    assert (view["state"], first["status"], first["outcome"]) == ("finished", "succeeded", "finished_after_runner_died")
    assert first["finished"] - first["started"] >= SLOW.sleep - 0.5
    assert ah.snapshot(root)["staged"] == {ah.VERSION_FILES["system-bios"]: "1.1"}
    assert item["script_start"] is not None
