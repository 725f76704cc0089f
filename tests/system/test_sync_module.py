"""The exup_repo_sync module run as a process (``python exup_repo_sync.py args.json``, what AnsiballZ ends up running).

The module leaves the checks of each ``servers`` entry to the core's server_from_dict (AnsibleModule's key-by-key
sub-option validation cost about 30 ms of every run with 2,000 servers): a bad entry must still fail the task with
a clear message and ``error: server_invalid``, before anything is fetched or written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import synthesize_feed
from ansible_collections.exup.fleet.tests.system import helpers as h


class ModuleFeed:
    """A synthetic feed on nginx and the module's arguments for a repository of its own."""

    def __init__(self, tmp_path: Path, feed_dir: Path, nginx, collections_path: Path) -> None:
        self.tmp_path, self.collections_path = tmp_path, collections_path
        key = SigningKey.generate()
        _count, self.models = synthesize_feed(str(feed_dir), key, entries=60, versions_per_module=5, avg_size=2048, seed=3)
        self.pub = tmp_path / "vendor.pub"
        self.pub.write_bytes(key.public_pem())
        self.root = tmp_path / "repo"
        self.url = nginx.url(h.CATALOG)
        self.nginx = nginx

    def sync(self, servers) -> dict:
        params = {"repository": str(self.root), "feed_url": self.url, "trusted_keys": [str(self.pub)], "servers": servers}
        args = self.tmp_path / "args.json"
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
        module = Path(__file__).resolve().parents[2] / "plugins" / "modules" / "exup_repo_sync.py"
        env = dict(os.environ, PYTHONPATH=str(self.collections_path))
        proc = subprocess.run([sys.executable, str(module), str(args)], check=False, capture_output=True, text=True, env=env, timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def module_feed(tmp_path: Path, tmp_feed_dir: Path, nginx, collections_path: Path) -> ModuleFeed:
    return ModuleFeed(tmp_path, tmp_feed_dir, nginx, collections_path)


def test_the_module_syncs_then_skips_the_plan(module_feed: ModuleFeed):
    # 1234: YAML reads an unquoted numeric name as a number; it is taken as its text, as AnsibleModule's str type did.
    servers = [{"name": 1234, "model": module_feed.models[0], "os": "rhel9"}, {"name": "web01", "model": module_feed.models[1], "os": "sles15", "modules": {}}]
    first = module_feed.sync(servers)
    assert not first.get("failed"), first
    assert first["changed"] is True and first["added"]
    second = module_feed.sync(servers)
    assert not second.get("failed"), second
    assert second["changed"] is False and second["feed_unchanged"] is True and second["plan_skipped"] is True
    names = {row[1] for row in h.db_rows(module_feed.root)["servers"]}
    assert names == {"1234", "web01"}


BAD_SERVERS = [
    ({"name": "db01", "model": "M"}, "server 'db01' has no os"),
    ({"name": "db01", "model": "", "os": "rhel9"}, "server 'db01' has no model"),
    ({"model": "M", "os": "rhel9"}, "server None has no name"),
    ({"name": "db01", "model": "M", "os": "rhel9", "bmc": "10.0.0.1"}, "server 'db01': unknown key bmc; a server has name, model, os, modules"),
    ({"name": "db01", "model": "M", "os": ["rhel9"]}, "server 'db01': os must be a string, not list"),
    ({"name": True, "model": "M", "os": "rhel9"}, "server True: name must be a string, not bool"),
    ({"name": "db01", "model": "M", "os": "rhel9", "modules": ["system-bios"]}, "server db01: modules must map a module id to {current, previous}"),
    ({"name": "db01", "model": "M", "os": "rhel9", "modules": {"system-bios": 3}}, "server db01: module system-bios must be a version or {current, previous}"),
]


@pytest.mark.parametrize("entry, message", BAD_SERVERS, ids=[m.split(": ", 1)[-1][:30] for _entry, m in BAD_SERVERS])
def test_a_bad_servers_entry_fails_and_changes_nothing(module_feed: ModuleFeed, entry, message):
    good = {"name": "web01", "model": module_feed.models[1], "os": "sles15"}
    assert not module_feed.sync([good]).get("failed")
    before = h.snapshot(module_feed.root, skip_tables=())
    requests = len(module_feed.nginx.access_log())
    answer = module_feed.sync([good, entry])
    assert answer.get("failed") is True and answer.get("error") == "server_invalid", answer
    assert answer["msg"] == message
    assert h.snapshot(module_feed.root, skip_tables=()) == before
    assert len(module_feed.nginx.access_log()) == requests  # failed before the catalog request


def test_a_servers_entry_that_is_no_mapping_fails_in_ansible_module(module_feed: ModuleFeed):
    answer = module_feed.sync(["db01"])
    assert answer.get("failed") is True and "servers" in answer["msg"] and "dict" in answer["msg"], answer
    assert not module_feed.root.exists()
