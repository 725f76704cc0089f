# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed's rules on the agent path (issue 8 items 9-10), with real ansible-playbook over ssh to the demo lab.

- exup_info register_server says changed when it changed the repository, not otherwise; the old name
  register still works with a deprecation warning;
- 003 Table 8 "rebooting": after exup_apply allow_reboot with reboot_allowed, the server shows rebooting
  and refuses applies (server_rebooting) until its boot id changes;
- 003 §2.1.1.2: the current version applied again with latest_only false (the package supports downgrade);
- 003 Table 9: exup_server_status and exup_repo_settings on the same repository (check mode, idempotence, bad input).
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.exup.fleet.tests.lab import packages
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

HOST = "r120h-1"


def task(module: str, name: str, body: str = "", extra: str = "") -> str:
    return f"- name: {module} ({name})\n  exup.fleet.{module}:\n{body or '    {}' + chr(10)}{extra}  register: r_{name}\n  ignore_errors: true\n"


def local(module: str, name: str, body: str, extra: str = "") -> str:
    """A repository module, run on the controller (the repository host)."""
    return task(module, name, '    repository: "{{ repos.default }}"\n' + body, extra)


#: the repository modules run in a play of their own: the scenario play's module_defaults (host_root...) are not theirs
REPOSITORY_PLAY = """\
---
- name: Repository settings and icons
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: The tasks
      block:
%s
      always:
        - name: Write what the tasks registered
          ansible.builtin.copy:
            content: "{{ dict(names | zip(q('ansible.builtin.vars', *names))) | to_json }}"
            dest: "{{ playbook_dir }}/result-localhost.json"
            mode: "0600"
          vars:
            names: "{{ q('ansible.builtin.varnames', '^r_') }}"
"""


def scenario() -> str:
    apply_body = "    poll_interval: 1\n"
    return "".join(
        [
            task("exup_info", "reg_first", "    register_server: true\n"),
            task("exup_info", "reg_again", "    register_server: true\n"),
            task("exup_info", "reg_old_name", "    register: true\n"),
            task("exup_apply", "bios", apply_body + "    modules: [system-bios]\n    allow_reboot: true\n    reboot_timeout: 600\n"),
            task("exup_info", "while_rebooting"),
            task("exup_apply", "refused", apply_body + "    modules: [raid-controller]\n"),
            ah.reboot_task("reboot"),
            task("exup_info", "back", "    register_server: true\n"),
            task("exup_apply", "same_again", apply_body + "    versions: {system-bios: '1.2'}\n    latest_only: false\n"),
            task("exup_apply", "same_latest_only", apply_body + "    versions: {system-bios: '1.2'}\n"),
        ]
    )


def repository_tasks() -> str:
    tasks = "".join(
        [
            local("exup_repo_settings", "settings_read", ""),
            local("exup_repo_settings", "settings_check", "    initial_manual_icon: latest\n", "  check_mode: true\n"),
            local("exup_repo_settings", "settings_set", "    initial_manual_icon: latest\n"),
            local("exup_repo_settings", "settings_again", "    initial_manual_icon: latest\n"),
            local("exup_server_status", "icon_check", f"    server_name: {HOST}\n    modules: [sdr]\n    icon: no_package\n", "  check_mode: true\n"),
            local("exup_server_status", "icon_set", f"    server_name: {HOST}\n    modules: [sdr]\n    icon: no_package\n"),
            local("exup_server_status", "icon_again", f"    server_name: {HOST}\n    modules: [sdr]\n    icon: no_package\n"),
            local("exup_server_status", "icon_bad", f"    server_name: {HOST}\n    modules: [no-such-module]\n    icon: latest\n"),
        ]
    )
    return REPOSITORY_PLAY % "".join("        " + line + "\n" for line in tasks.splitlines())


@pytest.fixture(scope="module")
def run(lab, tmp_path_factory):
    work = tmp_path_factory.mktemp("seed-statuses")
    repo, pem = lab.make_repository(work / "repo", packages.default_spec())
    extra = {"repos": {"default": str(repo)}, "pem": str(pem)}
    install = ah.Scenarios(work / "install", {HOST: task("exup_agent", "agent", "    license_accepted: true\n")})
    installed = ah.run_playbook(lab, install.path, extra)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    play = ah.Scenarios(work / "scenario", {HOST: scenario()})
    ran = ah.run_playbook(lab, play.path, extra)
    results = play.results()[HOST]
    local_play = work / "repository.yml"
    local_play.write_text(repository_tasks())
    done = ah.run_playbook(lab, local_play, extra)
    results.update({name[2:]: value for name, value in json.loads((work / "result-localhost.json").read_text()).items()})
    ran.stdout += done.stdout
    results["output"] = ran.stdout + ran.stderr
    results["repo"] = repo
    return results


def test_register_server_says_changed_only_when_it_changed_the_repository(run):
    first, again, old = run["reg_first"], run["reg_again"], run["reg_old_name"]
    assert not first.get("failed") and first["changed"] is first["registered"], first
    assert again["registered"] is False and again["changed"] is False, again
    assert not old.get("failed") and old["changed"] is False, old
    # after the update and the restart the versions differ: the record changes, and the task says so
    assert run["back"]["registered"] is True and run["back"]["changed"] is True, run["back"]
    assert "register is renamed register_server" in run["output"] and "2.0.0" in run["output"]
    assert HOST in ah.servers(run["repo"])


def test_rebooting_after_an_allowed_restart_refuses_applies_until_the_boot_id_changes(run):
    bios = run["bios"]
    assert not bios.get("failed") and bios["reboot_allowed"] is True, bios
    during = run["while_rebooting"]
    assert during["modules"]["system-bios"]["status"] == "rebooting", during["modules"]
    assert during["server_status"] == "applying"
    refused = run["refused"]
    assert refused.get("failed") and refused["error"] == "server_rebooting", refused
    assert "restarting" in refused["msg"] and "system-bios" in refused["msg"]
    assert run["reboot"].get("rebooted") is True, run["reboot"]
    back = run["back"]
    assert back["modules"]["system-bios"]["status"] == "latest" and back["modules"]["system-bios"]["current"] == "1.2", back["modules"]
    assert back["modules"]["raid-controller"]["status"] == "update_available"


def test_the_current_version_applied_again_when_latest_only_is_off(run):
    again = run["same_again"]
    assert not again.get("failed") and again["changed"] is True, again
    assert [(row["package_id"], row["status"], row["version_before"], row["version_target"]) for row in again["results"]] == [
        (again["plan"][0]["package_id"], "succeeded", "1.2", "1.2")
    ]
    unchanged = run["same_latest_only"]
    assert unchanged["changed"] is False and unchanged["plan"] == [], unchanged


def test_settings_and_icons_modules(run):
    assert run["settings_read"].get("settings", {}).get("initial_manual_icon") == "update_available", run["settings_read"]
    assert run["settings_read"]["changed"] is False
    assert run["settings_check"]["changed"] is True and run["settings_check"]["settings"]["initial_manual_icon"] == "latest"
    assert run["settings_set"]["changed"] is True and run["settings_again"]["changed"] is False
    assert run["icon_check"]["changed"] is True and run["icon_set"]["changed"] is True and run["icon_again"]["changed"] is False
    assert run["icon_set"]["icons"] == [{"module_id": "sdr", "before": None, "after": "no_package"}]
    bad = run["icon_bad"]
    assert bad.get("failed") and bad["error"] == "unknown_module" and "no-such-module" in bad["msg"], bad
    codes = [code for code, _level, _detail in ah.events(run["repo"])]
    assert codes.count("settings_changed") == 1 and codes.count("status_changed") == 1 and codes.count("settings_read") == 1
    assert "status_change_failed" in codes
