# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GitOps with a locked plan (issue 13.7) on two lab hosts: plan.yml writes the plan (the same file twice),
a changed baseline and a package synced since the review make apply_plan.yml refuse with plan_stale and nothing
changes on the hosts; a plan made again applies exactly its packages."""

from __future__ import annotations

import json
import subprocess

import pytest

from ansible_collections.exup.fleet.tests.lab import packages
from ansible_collections.exup.fleet.tests.lab.lab import MODEL_A, REPO_ROOT, Lab
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

PLAN = REPO_ROOT / "playbooks" / "plan.yml"
APPLY = REPO_ROOT / "playbooks" / "apply_plan.yml"
LATE_UTILITY = packages.LabPackage("raid-utility", "3.2.0", "2026-12-01", (MODEL_A,), uninstall=True, tag="late")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("locked-plan")
    lab = Lab(directory / "lab", hosts=2)
    lab.up()
    try:
        repo, pem = lab.make_repository(directory / "repo")
        play = ah.agent_install_play(directory)
        settings = {"exup_repository": str(repo), "exup_trusted_keys": [str(pem)], "apply_poll_interval": 1, "apply_serial": [1, "100%"]}
        installed = ah.run_playbook(lab, play, settings)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        yield lab, repo, settings, directory
    finally:
        lab.down()


def run(lab, playbook, settings, cwd=None, **more):
    command = ah.playbook_command(playbook, dict(settings, **more), "-i", lab.inventory_path)
    env = dict(lab.env(), PWD="/nonexistent") if cwd else lab.env()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    return done.returncode, done.stdout + done.stderr


def test_locked_plan_refuses_changes_and_applies_unchanged(site):
    lab, repo, settings, directory = site
    hosts = ["host001", "host002"]
    roots = {host: lab.host_root(host) for host in hosts}
    plan_file = directory / "plan.json"
    code, output = run(lab, PLAN, settings, plan_file=str(plan_file))
    assert code == 0, output
    first = plan_file.read_bytes()
    code, output = run(lab, PLAN, settings, plan_file=str(plan_file))
    assert code == 0, output
    assert plan_file.read_bytes() == first  # deterministic: the same file again
    document = json.loads(first)
    assert sorted(document["servers"]) == hosts and document["waves"] == [["host001"], ["host002"]]
    assert document["digests"]["baseline"] == "none"
    planned = {host: [row["package_id"] for row in document["servers"][host]["packages"]] for host in hosts}
    assert all(planned.values()), planned
    before = {host: ah.snapshot(root) for host, root in roots.items()}

    # a baseline attached since the review: refused before any server is touched
    code, output = run(lab, APPLY, settings, plan_file=str(plan_file), exup_baseline={"system-bios": "1.2"})
    assert code != 0 and "plan_stale" in output and "changed since the review: baseline" in output, output
    assert {host: ah.snapshot(root)["versions"] for host, root in roots.items()} == {host: snap["versions"] for host, snap in before.items()}

    # a package synced into the repository since the review: refused, nothing changed
    lab.make_repository(repo, [LATE_UTILITY])
    code, output = run(lab, APPLY, settings, plan_file=str(plan_file))
    assert code != 0 and "plan_stale" in output and "the locked plan is stale (changed since the review: repository)" in output, output
    after = {host: ah.snapshot(root) for host, root in roots.items()}
    for host in hosts:
        assert after[host]["versions"] == before[host]["versions"] and after[host]["jobs"] == before[host]["jobs"]

    # planned again and reviewed: the unchanged plan applies exactly its packages; a relative plan_file is taken from
    # the directory ansible-playbook runs in (its process's; PWD is left stale on purpose), not the collection's playbooks/
    plan_file.unlink()
    code, output = run(lab, PLAN, settings, plan_file="plan.json", cwd=directory)
    assert code == 0, output
    document = json.loads(plan_file.read_text())
    code, output = run(lab, APPLY, settings, plan_file="plan.json", cwd=directory)
    assert code == 0, output
    assert not (REPO_ROOT / "playbooks" / "plan.json").exists()
    for host in hosts:
        versions = ah.snapshot(roots[host])
        for item in document["servers"][host]["packages"]:
            if not item["reboot_required"]:
                assert versions["versions"][item["module_id"]] == item["to_version"], (host, item)
