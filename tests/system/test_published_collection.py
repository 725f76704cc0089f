"""The built collection as a user gets it: the README's example playbook run from the installed tarball.

scripts/test-publish.sh (the ``publish`` step of scripts/test.sh) builds the tarball, installs it into a
fresh collections path (EXUP_PUBLISH_COLLECTIONS) and a fresh venv with requirements.txt and ansible-core
only (EXUP_PUBLISH_VENV), then runs this test; without those two variables it is skipped. The playbook is
taken from README.md, so the test fails when the README's example drifts from the modules: only the
repository path, the feed URL and the trusted key are replaced by a real local feed on nginx (loopback).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.tests.system import helpers as h

REPO_ROOT = Path(__file__).resolve().parents[2]
README_HEADING = "A playbook on the repository host"
SYNC_MODULE = "exup.fleet.exup_repo_sync"
VENV = os.environ.get("EXUP_PUBLISH_VENV", "")
COLLECTIONS = os.environ.get("EXUP_PUBLISH_COLLECTIONS", "")

pytestmark = pytest.mark.skipif(
    not (VENV and COLLECTIONS), reason="run by scripts/test-publish.sh (EXUP_PUBLISH_VENV and EXUP_PUBLISH_COLLECTIONS: the installed tarball)"
)


def readme_playbook() -> list:
    """The first yaml block after README.md's "A playbook on the repository host" (else the first yaml block).

    The README is the installed collection's (the one Galaxy shows), which must be this checkout's.
    """
    installed = Path(COLLECTIONS) / "ansible_collections" / "exup" / "fleet" / "README.md"
    text = installed.read_text(encoding="utf-8")
    assert text == (REPO_ROOT / "README.md").read_text(encoding="utf-8"), "the installed README.md is not this checkout's"
    start = text.find(README_HEADING)
    blocks = re.findall(r"^```ya?ml\n(.*?)^```", text[start:] if start >= 0 else text, re.S | re.M)
    assert blocks, "README.md has no ```yaml block with the example playbook"
    plays = yaml.safe_load(blocks[0])
    assert isinstance(plays, list) and plays, "README.md's example playbook is not a list of plays"
    return plays


def sync_task(plays: list) -> dict:
    tasks = [task for play in plays for task in play.get("tasks", []) if SYNC_MODULE in task]
    assert len(tasks) == 1, f"README.md's example playbook should have one {SYNC_MODULE} task, has {len(tasks)}"
    return tasks[0]


def user_env(home: Path) -> dict:
    """What a user who installed the tarball has: the fresh venv and collections path, nothing of this checkout."""
    return {
        "PATH": f"{VENV}/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }


def test_the_readme_playbook_runs_from_the_installed_tarball(tmp_path: Path, tmp_feed_dir: Path, nginx):
    plays = readme_playbook()
    task = sync_task(plays)
    args = task[SYNC_MODULE]
    servers = args.get("servers")
    assert servers, "README.md's sync task names no servers"
    register = task.get("register")
    assert register, "README.md's sync task registers no result"

    # A real feed for the README's servers, served by nginx on loopback.
    key = SigningKey.generate()
    for model in sorted({server["model"] for server in servers}):
        for module_id in ("system-bios", "bmc-firmware"):
            for version in ("1.00", "1.01"):
                slug = re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-").lower()
                h.publish_package(tmp_feed_dir, key, h.info(f"{slug}-{module_id}-{version}", module_id, version, models=(model,)))
    pub = tmp_path / "vendor.pub"
    pub.write_bytes(key.public_pem())
    args.update(repository=str(tmp_path / "repo"), feed_url=nginx.url(h.CATALOG), trusted_keys=[str(pub)])

    result_file = tmp_path / "sync-result.json"
    plays[-1]["tasks"].append(
        {"name": "Keep the result for the test", "ansible.builtin.copy": {"content": "{{ %s | to_json }}" % register, "dest": str(result_file), "mode": "0600"}}
    )
    playbook = tmp_path / "readme-playbook.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    hosts = sorted({play["hosts"] for play in plays})
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        group: {"hosts": {f"{group}-host": {"ansible_connection": "local", "ansible_python_interpreter": f"{VENV}/bin/python"}}}
                        for group in hosts
                    }
                }
            }
        )
    )
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    env = user_env(home)

    # The collection Ansible finds is the installed tarball, not this checkout.
    listed = subprocess.run(
        [f"{VENV}/bin/ansible-galaxy", "collection", "list", "exup.fleet", "--format", "json"], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(listed.stdout)
    assert list(found) == [str(Path(COLLECTIONS) / "ansible_collections")], found

    def run() -> dict:
        result_file.unlink(missing_ok=True)
        proc = subprocess.run(
            [f"{VENV}/bin/ansible-playbook", "-i", str(inventory), str(playbook)], env=env, capture_output=True, text=True, check=False, timeout=300
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        assert "Traceback" not in proc.stderr, proc.stderr
        return json.loads(result_file.read_text())

    first = run()
    assert first["changed"] is True, first
    assert sorted(p["package_id"] for p in first["added"]) == sorted(e["package_id"] for e in h.catalog_entries(tmp_feed_dir)), first["added"]
    assert not first["refused"], first["refused"]
    second = run()
    assert second["changed"] is False and second["feed_unchanged"] is True, second
