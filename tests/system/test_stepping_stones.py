# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stepping-stone upgrades on the lab (rules/stepping.py): BIOS 1.0 -> 1.1 (from >= 1.0) -> 1.2 (from >= 1.1), both need a reboot.

The plan shows the whole path; each run applies the steps up to the first that needs a reboot
(the module is then "reboot required", 003 §2.1.5-6), the restart activates it, the next run continues.
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.exup.fleet.tests.lab import packages
from ansible_collections.exup.fleet.tests.lab.lab import MODEL_A, REPO_ROOT, Lab
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

HOST = "host001"
STONE = packages.LabPackage("system-bios", "1.1", "2026-02-01", (MODEL_A,), reboot=True, upgrade_from_min="1.0", tag="step")
TARGET = packages.LabPackage("system-bios", "1.2", "2026-03-01", (MODEL_A,), reboot=True, upgrade_from_min="1.1", tag="step")


def apply_task(name: str, check: bool = False) -> str:
    return (
        f"- name: exup_apply ({name})\n  exup.fleet.exup_apply:\n    poll_interval: 1\n    modules: [system-bios]\n"
        + ("  check_mode: true\n  diff: true\n" if check else "")
        + f"  register: r_{name}\n"
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("stepping")
    lab = Lab(directory / "lab", hosts=1)
    lab.up()
    try:
        agents = [spec for spec in packages.default_spec() if spec.module == packages.AGENT_MODULE]
        repo, pem = lab.make_repository(directory / "repo", agents + [STONE, TARGET])
        tasks = (
            "- name: Install the agent\n  exup.fleet.exup_agent:\n    license_accepted: true\n"
            + apply_task("plan", check=True)
            + apply_task("first")
            + ah.reboot_task("reboot1")
            + apply_task("plan2", check=True)
            + apply_task("second")
            + ah.reboot_task("reboot2")
            + ah.snapshot_task("snap")
        )
        scenarios = ah.Scenarios(directory / "scenarios", {HOST: tasks})
        extra = {"repos": {"default": str(repo)}, "pem": str(pem)}
        done = ah.run_playbook(lab, scenarios.path, extra)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        yield scenarios.results()[HOST]
    finally:
        lab.down()


def test_plan_shows_the_path_and_apply_reaches_the_target(run):
    planned = run["plan"]["plan"]
    assert [(row["from_version"], row["to_version"]) for row in planned] == [("1.0", "1.1")]
    assert [(step["version"], step["reboot_required"], step["this_run"]) for step in planned[0]["path"]] == [("1.1", True, True), ("1.2", True, False)]
    assert run["plan"]["diff"] == {"before": {"system-bios": "1.0"}, "after": {"system-bios": "1.1"}}
    assert [(row["package_id"], row["status"]) for row in run["first"]["results"]] == [(STONE.id, "succeeded")]
    assert run["first"]["reboot_required"]
    assert [(row["from_version"], row["to_version"]) for row in run["plan2"]["plan"]] == [("1.1", "1.2")]
    assert [(row["package_id"], row["status"]) for row in run["second"]["results"]] == [(TARGET.id, "succeeded")]
    assert run["snap"]["versions"]["system-bios"] == "1.2" and run["snap"]["staged"] == {}


def test_a_locked_plan_with_stepping_stones_shows_the_path_and_applies(tmp_path):
    """Issue 13 review: the locked item keeps the path and its final target; apply_plan.yml pins the target
    (the default latest_only refused the stone itself, so such a plan could never be applied)."""
    lab = Lab(tmp_path / "lab", hosts=1)
    lab.up()
    try:
        agents = [spec for spec in packages.default_spec() if spec.module == packages.AGENT_MODULE]
        repo, pem = lab.make_repository(tmp_path / "repo", agents + [STONE, TARGET])
        play = ah.agent_install_play(tmp_path)
        plan_file = tmp_path / "plan.json"
        settings = {"exup_repository": str(repo), "exup_trusted_keys": [str(pem)], "apply_poll_interval": 1, "plan_file": str(plan_file)}
        for playbook in (play, REPO_ROOT / "playbooks" / "plan.yml"):
            done = ah.run_playbook(lab, playbook, settings, "-i", lab.inventory_path)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        [item] = json.loads(plan_file.read_text())["servers"][HOST]["packages"]
        assert (item["package_id"], item["to_version"], item["target_version"]) == (STONE.id, "1.1", "1.2")
        assert [(step["version"], step["this_run"]) for step in item["path"]] == [("1.1", True), ("1.2", False)]
        done = ah.run_playbook(lab, REPO_ROOT / "playbooks" / "apply_plan.yml", settings, "-i", lab.inventory_path)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        after = ah.snapshot(lab.host_root(HOST))
        assert list(after["staged"].values()) == ["1.1"] and after["versions"]["system-bios"] == "1.0"  # the stone, staged until a restart
    finally:
        lab.down()
