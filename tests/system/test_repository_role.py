"""playbooks/repository_move.yml end to end on this machine (issue 12 item 2, 003 §4.3): a repository with
pinned packages is backed up through the role and restored into an empty one; the same move into a
repository that is not empty is refused with store_not_empty and changes nothing.

Both "hosts" are local connections (not yet the lab's ssh hosts, and without the service running: see the report of
issue 12 item 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.tests.system import helpers as h
from ansible_collections.exup.fleet.tests.system.agent_helpers import program

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "repository_move.yml"


def packages_of(root: Path) -> dict:
    repo = h.frozen_repo(root)
    with repo.read() as conn:
        return {pid: (item.sha256, item.pinned) for pid, item in conn.packages().items()}


def move(tmp_path: Path, collections_path: Path, old: Path, new: Path) -> subprocess.CompletedProcess:
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "hosts": {
                "old": dict(host, repository_path=str(old), repository_backup_path=str(tmp_path / "old-backup" / "r.tar")),
                "new": dict(host, repository_path=str(new), repository_backup_path=str(tmp_path / "new-backup" / "r.tar")),
            }
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_NOCOLOR="1")
    argv = [
        program("ansible-playbook"),
        "-i",
        str(tmp_path / "inventory.json"),
        str(PLAYBOOK),
        "-e",
        "repository_move_from=old",
        "-e",
        "repository_move_to=new",
    ]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_repository_move_restores_the_same_packages_and_refuses_a_store_that_is_not_empty(tmp_path: Path, collections_path: Path):
    key = SigningKey.generate()
    trusted = h.keyring(key)
    old, new = tmp_path / "old", tmp_path / "new"
    repo = h.frozen_repo(old)
    files = []
    for number, package_id in enumerate(("bios-1", "bmc-2", "nic-3")):
        path = tmp_path / ("%s.zip" % package_id)
        path.write_bytes(h.package_bytes(h.info(package_id, module_id="module-%d" % number), key))
        files.append(str(path))
    repo.add_files(files, trusted, mode="pinned")  # "needed" would keep only what a registered server needs
    before = packages_of(old)
    assert len(before) == 3

    done = move(tmp_path, collections_path, old, new)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 package(s) moved" in done.stdout
    assert packages_of(new) == before

    moved = h.snapshot(new)
    again = move(tmp_path, collections_path, old, new)
    assert again.returncode != 0
    assert "store_not_empty" in again.stdout
    assert h.snapshot(new) == moved
