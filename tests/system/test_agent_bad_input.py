# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input on the agent path: every refusal names its cause (error code, message) and leaves the host as it was.

Real ansible-playbook runs over ssh against the demo lab (docs/lab.md). "As it was" is checked on
the host's own files before and after each refusal, taken on the host between the tasks: version
files, staged firmware, var/lib/exup/state.json, the jobs folder (no new job), the boot id.

- a package altered in the host's inbox (the controller then skips the transfer, the host checks again);
- a version only another model has (controller), and a package of another model handed to the host directly (host);
- an unknown module, a server without the agent, a repository that is not there;
- a host whose /var/lib/exup is full (a real 512 KiB tmpfs mounted over it).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.tests.lab import packages
from ansible_collections.exup.fleet.tests.lab.lab import MODEL_B
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

MODEL_B_ONLY = packages.LabPackage("system-bios", "1.5", "2026-08-03", (MODEL_B,), reboot=True, downgrade=True)
RAID = "lab-raid-controller-5.1"
MANAGED = ("r120h-1", "r120h-2", "t120h-1")


def pool_path(repo: Path, package_id: str) -> tuple:
    """(sha256, size, path in the repository's pool) of a stored package."""
    ((sha256, size),) = ah.query(repo, "SELECT sha256, size FROM packages WHERE package_id = ?", package_id)
    return sha256, size, repo / "pool" / "sha256" / sha256[:2] / f"{sha256}.zip"


def apply_task(name: str, body: str = "") -> str:
    return f"- name: exup_apply ({name})\n  exup.fleet.exup_apply:\n    poll_interval: 1\n{body}  register: r_{name}\n  ignore_errors: true\n"


def scenarios() -> dict:
    return {
        "r120h-1": "".join(
            [
                ah.snapshot_task("snap_before"),
                apply_task("tampered", "    modules: [raid-controller]\n"),
                ah.snapshot_task("snap_after"),
                apply_task("retry", "    modules: [raid-controller]\n"),
            ]
        ),
        "r120h-2": "".join(
            [
                ah.snapshot_task("snap0"),
                apply_task("other_model", "    versions: {system-bios: '1.5'}\n    latest_only: false\n"),
                ah.snapshot_task("snap1"),
                apply_task("unknown", "    modules: [no-such-module]\n"),
                ah.snapshot_task("snap2"),
                apply_task("no_repository", "    repository: \"{{ missing_repo }}\"\n"),
                ah.snapshot_task("snap3"),
                # The host sees only its own root (docs/lab.md): the package file is copied over first, as the controller would,
                # and the key goes as PEM text, as the action plugins send it.
                "- name: Copy the model B package to the host\n"
                "  ansible.builtin.copy:\n"
                "    src: \"{{ model_b_item.src }}\"\n"
                "    dest: /tmp/model-b.zip\n"
                "    mode: \"0600\"\n"
                "- name: Hand the host a package of model B directly (exup_host phase start)\n"
                "  exup.fleet.exup_host:\n"
                "    phase: start\n"
                "    host_root: \"{{ exup_host_root }}\"\n"
                "    trusted_keys_pem: [\"{{ lookup('ansible.builtin.file', pem) }}\"]\n"
                "    items: \"{{ [model_b_item | combine({'src': '/tmp/model-b.zip'})] }}\"\n"
                "  register: r_wrong_model\n"
                "  ignore_errors: true\n",
                ah.snapshot_task("snap4"),
            ]
        ),
        "r120h-3": "".join(
            [
                ah.snapshot_task("snap_before"),
                apply_task("no_agent"),
                ah.snapshot_task("snap_after"),
            ]
        ),
        "t120h-1": "".join(
            [
                ah.snapshot_task("snap_before"),
                apply_task("full"),
                ah.snapshot_task("snap_after"),
            ]
        ),
    }


class Refusals:
    """What the bad requests left: results per host, the repository, t120h-1 as seen while its disk was full."""

    def __init__(self, lab, repo, missing_repo):
        self.lab = lab
        self.repo = repo
        self.missing_repo = missing_repo
        self.results = {}
        self.output = ""
        self.mounted = None


@pytest.fixture(scope="module")
def refusals(lab, tmp_path_factory):
    """Install the agent, spoil two hosts (altered inbox file, full disk), run every bad request at once."""
    work = tmp_path_factory.mktemp("agent-bad-input")
    repo, pem = lab.make_repository(work / "repo", packages.default_spec() + [MODEL_B_ONLY])
    extra = {"repos": {"default": str(repo)}, "pem": str(pem)}
    play = work / "agents.yml"
    play.write_text("""\
---
- name: Install the agent on the managed hosts
  hosts: managed
  gather_facts: false
  tasks:
    - name: Install the agent
      exup.fleet.exup_agent:
        repository: "{{ repos.default }}"
        trusted_keys: ["{{ pem }}"]
        license_accepted: true
        host_root: "{{ exup_host_root }}"
""")
    installed = ah.run_playbook(lab, play, extra)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # r120h-1: its inbox holds a file named like the RAID package, with other bytes (one flipped).
    sha256, _size, path = pool_path(repo, RAID)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (lab.host_root("r120h-1") / ah.STATE_DIR / "inbox" / f"{sha256}.zip").write_bytes(bytes(data))

    # r120h-2 gets the model B package handed to exup_host directly, as the controller would after a transfer.
    b_sha, b_size, b_path = pool_path(repo, MODEL_B_ONLY.id)
    info = MODEL_B_ONLY.info()
    extra["model_b_item"] = {
        "package_id": info.package_id,
        "module_id": info.module_id,
        "action": "install",
        "from_version": "1.0",
        "to_version": info.version,
        "reboot_required": True,
        "release_date": info.release_date,
        "sha256": b_sha,
        "size": b_size,
        "src": str(b_path),
    }
    extra["missing_repo"] = str(work / "no-such-repository")
    found = Refusals(lab, repo, work / "no-such-repository")

    # t120h-1: a small real file system over its /var/lib/exup, holding what was there.
    state_dir = lab.host_root("t120h-1") / ah.STATE_DIR
    before_mount = ah.snapshot(lab.host_root("t120h-1"))
    saved = Path(tempfile.mkdtemp(dir=work)) / "exup"
    shutil.copytree(state_dir, saved, symlinks=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "exup-full", str(state_dir)], check=True)
    try:
        subprocess.run(["cp", "-a", f"{saved}/.", str(state_dir)], check=True)
        assert ah.snapshot(lab.host_root("t120h-1")) == before_mount
        run = ah.Scenarios(work / "scenarios", scenarios())
        ran = subprocess.run(run.command(extra), env=lab.env(), capture_output=True, text=True, timeout=300, check=False)
        found.mounted = ah.snapshot(lab.host_root("t120h-1"))
    finally:
        subprocess.run(["umount", str(state_dir)], check=True)
    found.results, found.output = run.results(), ran.stdout + ran.stderr
    return found


def refused(result: dict, code: str, *words: str) -> None:
    assert result.get("failed") and result.get("error") == code, result
    for word in words:
        assert word in result["msg"], result["msg"]


def assert_unchanged(before: dict, after: dict) -> None:
    for key in ("versions", "staged", "state", "jobs", "boot_id", "agent_dir"):
        assert after[key] == before[key], key


def test_package_altered_in_the_host_inbox_is_refused_and_removed(refusals):
    run = refusals.results["r120h-1"]
    sha256, _size, _path = pool_path(refusals.repo, RAID)
    assert f"{sha256}.zip" in run["snap_before"]["inbox"]  # so the controller did not send it again
    refused(run["tampered"], "digest_mismatch", RAID, "failed verification on the host, nothing was applied")
    assert_unchanged(run["snap_before"], run["snap_after"])
    assert run["snap_after"]["versions"]["raid-controller"] == "5.0"
    assert f"{sha256}.zip" not in run["snap_after"]["inbox"]  # the bad copy is gone...
    retry = run["retry"]  # ... so the next apply sends the package again, and it applies
    assert not retry.get("failed") and [(row["package_id"], row["status"]) for row in retry["results"]] == [(RAID, "succeeded")], retry
    host = ah.snapshot(refusals.lab.host_root("r120h-1"))
    assert hashlib.sha256((refusals.lab.host_root("r120h-1") / ah.STATE_DIR / "inbox" / f"{sha256}.zip").read_bytes()).hexdigest() == sha256
    assert host["versions"]["raid-controller"] == "5.1"
    codes = [(code, detail.get("error")) for code, level, detail in ah.events(refusals.repo, "r120h-1") if code.startswith("apply_")]
    assert codes[:2] == [("apply_started", None), ("apply_failed", "digest_mismatch")], codes


def test_version_of_another_model_is_not_available(refusals):
    run = refusals.results["r120h-2"]
    refused(run["other_model"], "version_not_available", "no system-bios version 1.5 for this server", "1.0, 1.1, 1.2")
    assert_unchanged(run["snap0"], run["snap1"])


def test_host_refuses_a_package_of_another_model(refusals):
    run = refusals.results["r120h-2"]
    refused(run["wrong_model"], "wrong_model", MODEL_B_ONLY.id, MODEL_B, "not for this server")
    assert_unchanged(run["snap3"], run["snap4"])
    assert run["snap4"]["versions"]["system-bios"] == "1.0" and run["snap4"]["staged"] == {}


def test_unknown_module(refusals):
    run = refusals.results["r120h-2"]
    refused(run["unknown"], "unknown_module", "unknown module 'no-such-module'")
    assert_unchanged(run["snap1"], run["snap2"])
    # Every refused operation leaves an error event with its cause (003 Table 19).
    errors = [(code, level, detail.get("error")) for code, level, detail in ah.events(refusals.repo, "r120h-2")]
    assert ("apply_failed", "error", "unknown_module") in errors, errors
    assert ("apply_failed", "error", "version_not_available") in errors, errors


def test_repository_unreachable(refusals):
    run = refusals.results["r120h-2"]
    refused(run["no_repository"], "repository_unavailable", str(refusals.missing_repo), "cannot be reached")
    assert_unchanged(run["snap2"], run["snap3"])
    assert not refusals.missing_repo.exists()  # asking did not create it


def test_agent_missing(refusals):
    run = refusals.results["r120h-3"]
    refused(run["no_agent"], "agent_missing", "not installed on r120h-3", "exup.fleet.exup_agent")
    assert_unchanged(run["snap_before"], run["snap_after"])
    assert not run["snap_after"]["agent_dir"] and run["snap_after"]["inbox"] == []


def test_host_disk_full(refusals):
    run = refusals.results["t120h-1"]
    refused(run["full"], "disk_full", "not enough disk space", "bytes free")
    assert_unchanged(run["snap_before"], run["snap_after"])
    assert run["snap_after"]["inbox"] == run["snap_before"]["inbox"]  # nothing was copied in
    assert refusals.mounted == run["snap_after"]
    host = ah.snapshot(refusals.lab.host_root("t120h-1"))  # after the umount: the real folder, untouched
    assert_unchanged(run["snap_before"], host)
    codes = [(code, detail.get("error")) for code, level, detail in ah.events(refusals.repo, "t120h-1") if code.startswith("apply_")]
    assert codes == [("apply_started", None), ("apply_failed", "disk_full")], codes
