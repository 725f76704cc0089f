# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Agent remote install (003 §3.8) and uninstall (§3.9) with exup_agent, over ssh against the demo lab.

One playbook run: every host plays its own part at once (strategy free). r120h-1 walks the wizard
(refused without the license or with another folder, installed from installation media, upgraded
from the repository, installed twice, queried, its logs collected, uninstalled); r120h-2 and
t120h-1 install from a given file with and without prefer_newer; the VM guest, the unsupported OS
and the unsupported model are refused with their reason. The host roots and the repository's
database say what really happened.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ansible_collections.exup.fleet.tests.lab import packages
from ansible_collections.exup.fleet.tests.lab.lab import MODEL_A, MODEL_B
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

FILE_OLDER = packages.LabPackage("update-agent", "1.0.5", "2026-07-01", (MODEL_A, MODEL_B), os=packages.SOFTWARE_OS, downgrade=True, uninstall=True, tag="file")
FILE_USED = packages.LabPackage("update-agent", "1.0.6", "2026-07-02", (MODEL_A, MODEL_B), os=packages.SOFTWARE_OS, downgrade=True, uninstall=True, tag="file")
UNSUPPORTED = {"vm-1": "virtual_machine", "r120h-c6": "unsupported_os", "gt110x-1": "unsupported_model"}


def agent_task(name: str, body: str = "", ignore_errors: bool = False) -> str:
    return f"- name: exup_agent ({name})\n  exup.fleet.exup_agent:\n{body}  register: r_{name}\n" + ("  ignore_errors: true\n" if ignore_errors else "")


LICENSED = "    license_accepted: true\n"
WIZARD = "".join(
    [
        agent_task("no_license", ignore_errors=True),
        agent_task("install_dir", LICENSED + "    install_dir: /usr/local/exup\n", ignore_errors=True),
        ah.snapshot_task("snap_refused"),
        agent_task("media", LICENSED + "    source: media\n    media_path: \"{{ media }}\"\n"),
        agent_task("upgrade", LICENSED),
        ah.snapshot_task("snap_upgraded"),
        agent_task("again", LICENSED),
        ah.snapshot_task("snap_again"),
        agent_task("query", "    state: query\n"),
        agent_task("logs", "    state: logs_collected\n    logs_dest: \"{{ logs }}\"\n"),
        agent_task("absent", "    state: absent\n"),
        ah.snapshot_task("snap_absent"),
        agent_task("query_after", "    state: query\n"),
    ]
)
SCENARIOS = {
    "r120h-1": WIZARD,
    "r120h-2": agent_task("file", LICENSED + "    source: file\n    file: \"{{ file_older }}\"\n"),
    "t120h-1": agent_task("file", LICENSED + "    source: file\n    file: \"{{ file_used }}\"\n    prefer_newer: false\n"),
}
SCENARIOS.update({host: "".join([agent_task("refused", LICENSED, ignore_errors=True), ah.snapshot_task("snap_after")]) for host in UNSUPPORTED})


class Installs:
    def __init__(self, lab, repo, work):
        self.lab = lab
        self.repo = repo
        self.work = work
        self.results = {}
        self.output = ""
        self.before = {}


@pytest.fixture(scope="module")
def installs(lab, tmp_path_factory):
    work = tmp_path_factory.mktemp("agent-install")
    repo, pem = lab.make_repository(work / "repo")
    found = Installs(lab, repo, work)
    files = lab.build_packages([FILE_OLDER, FILE_USED], out_dir=work / "files")
    # Installation media: the agent 1.0.0 among other files (a firmware package, a text file).
    media = work / "media"
    (media / "linux" / "agent").mkdir(parents=True)
    (media / "README.txt").write_text("exup installation media\n")
    shutil.copy(lab.packages_dir / "lab-update-agent-1.0.0.zip", media / "linux" / "agent")
    shutil.copy(lab.packages_dir / "lab-system-bios-r120h-1.2.zip", media / "linux")
    extra = {
        "repos": {"default": str(repo)},
        "pem": str(pem),
        "media": str(media),
        "logs": str(work / "logs"),
        "file_older": str(files[FILE_OLDER.id]),
        "file_used": str(files[FILE_USED.id]),
    }
    found.before = {host: ah.snapshot(lab.host_root(host)) for host in SCENARIOS}
    run = ah.Scenarios(work / "scenarios", SCENARIOS)
    ran = subprocess.run(run.command(extra), env=lab.env(), capture_output=True, text=True, timeout=300, check=False)
    found.results, found.output = run.results(), ran.stdout + ran.stderr
    return found


def no_error(result: dict) -> dict:
    assert not result.get("failed"), result
    return result


def test_refused_without_license_or_with_another_folder(installs):
    run = installs.results["r120h-1"]
    refused = run["no_license"]
    assert refused["failed"] and refused["error"] == "license_not_accepted" and "license must be accepted" in refused["msg"], refused
    refused = run["install_dir"]
    assert refused["failed"] and refused["error"] == "install_dir_fixed", refused
    assert "/opt/exup/agent" in refused["msg"] and "/usr/local/exup" in refused["msg"]
    assert not run["snap_refused"]["agent_dir"] and run["snap_refused"] == installs.before["r120h-1"]


def test_media_install_then_upgrade_then_unchanged(installs):
    run = installs.results["r120h-1"]
    root = installs.lab.host_root("r120h-1")
    media = no_error(run["media"])
    assert (media["status"], media["version"], media["source_used"], media["package_id"]) == ("installed", "1.0.0", "media", "lab-update-agent-1.0.0")
    upgrade = no_error(run["upgrade"])
    assert (upgrade["status"], upgrade["version"], upgrade["source_used"], upgrade["changed"]) == ("upgraded", "1.1.0", "repository", True)
    assert upgrade["diff"] == {"before": {"agent": "1.0.0"}, "after": {"agent": "1.1.0"}}
    assert run["snap_upgraded"]["versions"]["update-agent"] == "1.1.0"
    again = no_error(run["again"])
    assert (again["status"], again["version"], again["changed"]) == ("unchanged", "1.1.0", False)
    assert_same = {key: run["snap_again"][key] for key in ("versions", "inbox", "jobs")}
    assert assert_same == {key: run["snap_upgraded"][key] for key in ("versions", "inbox", "jobs")}
    installed = [line for line in ah.agent_log(root) if "install of lab-update-agent" in line]
    assert [line.split("install of ")[1] for line in installed] == [
        "lab-update-agent-1.0.0 1.0.0: exit status 0",
        "lab-update-agent-1.1.0 1.1.0: exit status 0",
    ]  # not a third time
    install_events = [(code, detail.get("error")) for code, level, detail in ah.events(installs.repo, "r120h-1") if code.startswith("agent_install")]
    # The two refused wizard runs (test_refused_without_license_or_with_another_folder) are logged failures too, then two installs.
    assert (
        install_events
        == [("agent_install_failed", "license_not_accepted"), ("agent_install_failed", "install_dir_fixed")]
        + [("agent_install_started", None), ("agent_installed", None)] * 2
    ), install_events


def test_query_logs_and_uninstall(installs):
    run = installs.results["r120h-1"]
    root = installs.lab.host_root("r120h-1")
    query = no_error(run["query"])
    assert (query["status"], query["version"], query["changed"]) == ("installed", "1.1.0", False)
    assert query["folder"] == "/" + ah.AGENT_DIR  # the host's own path: a lab host runs with host_root "/" in its own root (docs/lab.md)
    logs = no_error(run["logs"])
    collected = installs.work / "logs" / "r120h-1" / "agent.log"
    assert logs["files"] == [str(collected)] and logs["changed"]
    # What was collected is the agent's log up to then (the uninstall added a line afterwards).
    assert "install of lab-update-agent-1.1.0" in collected.read_text()
    assert (root / ah.STATE_DIR / "log" / "agent.log").read_text().startswith(collected.read_text())
    absent = no_error(run["absent"])
    assert (absent["status"], absent["changed"]) == ("uninstalled", True)
    assert not run["snap_absent"]["agent_dir"] and not (root / "opt" / "exup" / "agent").exists()
    assert (root / ah.STATE_DIR).is_dir()  # journals and logs stay
    after = no_error(run["query_after"])
    assert (after["status"], after["version"]) == ("not_installed", None)
    assert "r120h-1" not in ah.servers(installs.repo)  # agent management of this server ended
    assert "agent_uninstalled" in [code for code, level, detail in ah.events(installs.repo, "r120h-1")]


def test_given_file_older_than_the_repository(installs):
    """prefer_newer (default): the repository's newer agent is installed and the given file stays out of the repository."""
    result = no_error(installs.results["r120h-2"]["file"])
    assert (result["source_used"], result["version"], result["status"]) == ("repository_newer", "1.1.0", "installed")
    assert FILE_OLDER.id not in ah.package_ids(installs.repo)
    assert ah.snapshot(installs.lab.host_root("r120h-2"))["versions"]["update-agent"] == "1.1.0"


def test_given_file_used_and_added(installs):
    """prefer_newer false: the given (older) file is installed and added to the repository (pinned)."""
    result = no_error(installs.results["t120h-1"]["file"])
    assert (result["source_used"], result["version"], result["package_id"]) == ("file", "1.0.6", FILE_USED.id)
    assert ah.snapshot(installs.lab.host_root("t120h-1"))["versions"]["update-agent"] == "1.0.6"
    assert ah.query(installs.repo, "SELECT pinned FROM packages WHERE package_id = ?", FILE_USED.id) == [(1,)]
    assert ah.servers(installs.repo)["t120h-1"]["model"] == MODEL_B


@pytest.mark.parametrize("host", sorted(UNSUPPORTED))
def test_unsupported_servers_are_refused_with_the_reason(installs, host):
    refused = installs.results[host]["refused"]
    assert refused["failed"] and refused["error"] == UNSUPPORTED[host], refused
    assert refused.get("status") == "failed"
    assert installs.results[host]["snap_after"] == installs.before[host]
    assert not (installs.lab.host_root(host) / ah.AGENT_DIR).exists()
