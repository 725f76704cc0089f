# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""13.5 "succeeded but unchanged" caught by playbooks/apply.yml on three lab hosts, one wave each, an error budget of 1.

- host001's repository has BIOS firmware whose install script says it installed 1.3 and changes nothing; it needs a
  restart, so exup_apply reports it succeeded and staged: the query after the (real, lab) restart reads 1.0, and the
  rollout fails the server (verification after the restart) and logs succeeded_unchanged;
- host002's repository has such a RAID controller package, active at once: exup_apply itself fails it
  (error succeeded_unchanged), logs the event, and §2.1.2 allows no restart;
- two failures are more than apply_verify_budget=1 (the first alone is not: the second wave ran), so the third wave
  is held back: host003 keeps every version, runs no job and keeps its boot;
- apply_rollback_on_unchanged: host001's BIOS is written again at its previous generation (1.0, staged for the next
  restart); host002's previous RAID controller version is not in its repository, so its rollback fails (version_not_available).

Nothing is mocked: ansible-playbook over the lab's ssh, the agent on the hosts, the repositories' SQLite logs.
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.exup.fleet.tests.lab import packages
from ansible_collections.exup.fleet.tests.lab.lab import REPO_ROOT, Lab
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

APPLY = REPO_ROOT / "playbooks" / "apply.yml"
HOSTS = ("host001", "host002", "host003")
STAGED_NO_OP = packages.unchanged_package("system-bios", "1.3", reboot=True, release_date="2026-11-02")
ACTIVE_NO_OP = packages.unchanged_package("raid-controller", "5.2", release_date="2026-11-02")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rollout-verify")
    lab = Lab(directory / "lab", hosts=len(HOSTS))
    lab.up()
    try:
        default, pem = lab.make_repository(directory / "repo-default")
        repos = {
            "host001": lab.make_repository(directory / "repo-staged", packages.default_spec() + [STAGED_NO_OP])[0],
            "host002": lab.make_repository(directory / "repo-active", packages.default_spec() + [ACTIVE_NO_OP])[0],
            "host003": default,
        }
        inventory = directory / "repositories.yml"
        inventory.write_text(json.dumps({"all": {"hosts": {host: {"exup_repository": str(repo)} for host, repo in repos.items()}}}))
        play = ah.agent_install_play(directory)
        installed = ah.run_playbook(lab, play, {"exup_trusted_keys": [str(pem)]}, "-i", lab.inventory_path, "-i", inventory)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        yield lab, repos, pem, inventory
    finally:
        lab.down()


def test_succeeded_but_unchanged_fails_the_server_and_the_budget_holds_back_the_next_wave(site):
    lab, repos, pem, inventory = site
    roots = {host: lab.host_root(host) for host in HOSTS}
    before = {host: ah.snapshot(root) for host, root in roots.items()}
    settings = {
        "target": "managed",
        "exup_trusted_keys": [str(pem)],
        "apply_poll_interval": 1,
        "apply_serial": 1,
        "apply_modules": ["system-bios", "raid-controller"],
        "apply_allow_reboot": True,
        "apply_verify_budget": 1,
        "apply_rollback_on_unchanged": True,
    }
    done = ah.run_playbook(lab, APPLY, settings, "-i", lab.inventory_path, "-i", inventory)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    recap = ah.recap(output)
    assert {host: recap[host]["failed"] for host in HOSTS} == {"host001": 1, "host002": 1, "host003": 0}, output
    after = {host: ah.snapshot(root) for host, root in roots.items()}

    # host001: the staged package "succeeded"; the restart happened; the version read after it is unchanged
    assert after["host001"]["boot_id"] != before["host001"]["boot_id"], output
    assert after["host001"]["versions"]["system-bios"] == before["host001"]["versions"]["system-bios"] == "1.0"
    assert after["host001"]["versions"]["raid-controller"] == "5.1"  # the real package of the same job did change
    assert len(after["host001"]["jobs"]) == len(before["host001"]["jobs"]) + 2, output  # the apply, then the rollback
    journal = ah.journal(roots["host001"], after["host001"]["jobs"][-2])
    assert {item["package_id"]: item["status"] for item in journal["items"]}[STAGED_NO_OP.id] == "succeeded"
    # apply_rollback_on_unchanged: the previous generation (1.0, the version before the apply) written again, staged
    rollback = ah.journal(roots["host001"], after["host001"]["jobs"][-1])
    assert [(item["package_id"], item["status"]) for item in rollback["items"]] == [("lab-system-bios-r120h-1.0", "succeeded")], rollback
    assert after["host001"]["staged"] == {ah.VERSION_FILES["system-bios"]: "1.0"}, after["host001"]["staged"]
    assert "rolled back to the previous generation: system-bios 1.0 -> 1.0 succeeded (staged, active after the next restart)" in output
    assert f"FAILED verification after the restart: {STAGED_NO_OP.id} the package reported success but the version read after it is 1.0, not 1.3" in output

    # host002: active at once, so exup_apply itself caught it; no restart (§2.1.2: a package failed)
    assert after["host002"]["boot_id"] == before["host002"]["boot_id"], output
    assert after["host002"]["versions"]["raid-controller"] == before["host002"]["versions"]["raid-controller"]
    assert f"{ACTIVE_NO_OP.id} failed verification on host002" in output and "(succeeded_unchanged)" in output
    # its previous generation (5.0, what the lab host ran before) is not in the repository: the rollback fails, nothing runs
    assert len(after["host002"]["jobs"]) == len(before["host002"]["jobs"]) + 1, output
    assert "rollback (exup_apply, versions previous): the repository holds no raid-controller version 5.0" in output, output

    # host003: held back by the budget (2 failures > 1): nothing ran there
    for key in ("versions", "staged", "jobs", "boot_id"):
        assert after["host003"][key] == before["host003"][key], (key, output)
    assert "not applied: the error budget (apply_verify_budget=1) was exceeded in an earlier wave" in output
    assert "3 of 3 server(s) chosen, 2 failed, 2 succeeded but unchanged, 1 held back after a failure;" in output
    assert "error budget apply_verify_budget=1: 2 of 2 applied failed, exceeded" in output

    # the repository's log: one succeeded_unchanged event for each, naming the module
    for host, module in (("host001", "system-bios"), ("host002", "raid-controller")):
        found = [(code, level, detail) for code, level, detail in ah.events(repos[host], host) if code == "succeeded_unchanged"]
        assert len(found) == 1 and found[0][1] == "error", found
        assert found[0][2]["module_id"] == module and found[0][2]["version_after"] == before[host]["versions"][module], found
    assert [code for code, level, detail in ah.events(repos["host003"], "host003") if code.startswith("apply_")] == []


def test_firmware_staged_earlier_and_lost_at_the_restart_is_caught_with_reboot_pending(site):
    """host002 still has BIOS 1.2 staged from the first test (its restart was not allowed: a package failed). The
    staged image is lost (the lab's staged file removed, as hardware that drops it at power on): a run with
    apply_reboot_pending restarts it, the query after the restart reads 1.0, not 1.2, and the server fails."""
    lab, repos, pem, inventory = site
    root = lab.host_root("host002")
    before = ah.snapshot(root)
    staged_file = root / ah.STAGED_DIR / ah.VERSION_FILES["system-bios"]
    assert staged_file.read_text().strip() == "1.2", before["staged"]  # left by the first test
    staged_file.unlink()
    settings = {
        "target": "host002",
        "exup_trusted_keys": [str(pem)],
        "apply_poll_interval": 1,
        "apply_status_filter": "reboot_required",
        "apply_modules": ["system-bios"],
        "apply_reboot_pending": True,
        "apply_allow_reboot": True,
    }
    done = ah.run_playbook(lab, APPLY, settings, "-i", lab.inventory_path, "-i", inventory)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and ah.recap(output)["host002"]["failed"] == 1, output
    after = ah.snapshot(root)
    assert after["boot_id"] != before["boot_id"] and after["versions"]["system-bios"] == "1.0", output
    assert after["jobs"] == before["jobs"], output  # nothing was applied now: only the restart
    assert "rebooted (firmware staged earlier)" in output, output
    assert (
        "FAILED verification after the restart: system-bios 1.2 (staged by an earlier apply) the package reported success"
        " but the version read after it is 1.0, not 1.2" in output
    ), output
    found = [detail for code, level, detail in ah.events(repos["host002"], "host002") if code == "succeeded_unchanged"]
    assert [(item["module_id"], item["version_target"], item["version_after"]) for item in found][-1] == ("system-bios", "1.2", "1.0"), found
