"""The inventory plugin exup.fleet.exup for real (issue 12): ansible-inventory --list and --graph over a repository.

A repository made with the core API (signed packages added, servers registered by two managers, a BMC record, an icon chosen by
hand), read by ansible-inventory as a process: from its local path, and from the repository service (HTTPS on loopback, the read
user, pages of two servers). Also the inventory cache (the second run reads it, not the repository), compose / groups /
keyed_groups / strict, and bad repositories, URLs and passwords: one line with the error code, no traceback. Each host's
exup_read_at is the repository's time of its last registration, from the path and over the service alike (issue 13.1).
About 15 s.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK, free_port
from ansible_collections.exup.fleet.tests.services.repo_service import ADMIN_PASSWORD, READ_PASSWORD, RepoService
from ansible_collections.exup.fleet.tests.system import helpers as h

OTHER_MODEL = "Express5800/R120h-2M"


def build_repository(root: Path) -> Repository:
    key = SigningKey.generate()
    repo = Repository(str(root))
    files = []
    packages: list[tuple[str, str, str, dict[str, Any]]] = [
        ("bios-200", "system-bios", "2.00", {}),
        ("bmc-300", "bmc-firmware", "3.00", {"kind": "bmc"}),
        ("sdr-100", "sdr", "1.00", {"auto_update": False}),
    ]
    for package_id, module_id, version, fields in packages:
        path = root.parent / (package_id + ".zip")
        path.write_bytes(h.package_bytes(h.info(package_id, module_id, version, **fields), key))
        files.append(str(path))
    added = repo.add_files(files, h.keyring(key), mode="pinned")
    assert [item["result"] for item in added] == ["added"] * 3, added
    servers = [
        Server("local", "web-1", h.MODEL, "rhel9", {"system-bios": {"current": "1.00"}}),
        Server("local", "web-2", h.MODEL, "rhel9", {"system-bios": {"current": "2.00", "previous": "1.00"}, "sdr": {"current": "1.00"}}),
        Server("local", "db-1", OTHER_MODEL, "win2022", {"system-bios": {"current": "1.00"}}),
        Server("site-b", "web-1", h.MODEL, "rhel9", {"system-bios": {"current": "2.00"}, "bmc-firmware": {"current": "2.00"}}),
        Server("site-b", "app-1", h.MODEL, "rhel9", {"system-bios": {"current": "2.00"}}),
    ]
    for server in servers:
        repo.record_server(server.manager_id, server)
    repo.set_bmc_module("site-b", "web-1", "bmc-firmware", previous="2.00", block="reboot_required", staged="3.00")
    repo.set_manual_icons("local", "web-2", ["sdr"], "latest")
    return repo


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    (root / "work").mkdir()
    return build_repository(root / "work" / "repo")


@pytest.fixture(scope="module")
def service(fleet: Repository):
    with RepoService(fleet.store.root, tls=True) as running:
        yield running


def inventory_env(collections_path: Path, **more: str) -> dict:
    env = dict(
        os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_INVENTORY_ENABLED="exup.fleet.exup", ANSIBLE_INVENTORY_UNPARSED_FAILED="true"
    )
    env.pop("EXUP_REPOSITORY_PASSWORD", None)
    env.update(more)
    return env


def run_inventory(source: Path, collections_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = ["ansible-inventory", "-i", str(source), *(args or ("--list",))]
    proc = subprocess.run(command, env=env or inventory_env(collections_path), capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def plain(value):
    """The listing without ansible-inventory's marks of untrusted text ({"__ansible_unsafe": text}: the repository's data is never templated)."""
    if isinstance(value, dict):
        return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def listed(source: Path, collections_path: Path, env: dict | None = None) -> dict:
    proc = run_inventory(source, collections_path, "--list", env=env)
    assert proc.returncode == 0, proc.stderr
    return plain(json.loads(proc.stdout))


def members(listing: dict, group: str) -> list:
    return sorted(listing.get(group, {}).get("hosts", []))


def write_source(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(["plugin: exup.fleet.exup", *lines]) + "\n")
    return path


CONSTRUCTED = [
    "compose:",
    "  exup_bmc_address: exup_server_name ~ '-bmc.lab.example'",
    "  exup_bmc_protocol: \"'redfish'\"",
    "groups:",
    "  needs_bios: exup_module_statuses['system-bios'] | default('') == 'update_available'",
    "keyed_groups:",
    "  - key: exup_module_versions['system-bios']",
    "    prefix: bios",
]


def check_fleet(listing: dict) -> None:
    hostvars = listing["_meta"]["hostvars"]
    assert sorted(hostvars) == ["app-1", "db-1", "web-1@local", "web-1@site-b", "web-2"]
    assert members(listing, "exup_model_Express5800_T110z_1M") == ["app-1", "web-1@local", "web-1@site-b", "web-2"]
    assert members(listing, "exup_os_win2022") == ["db-1"]
    assert members(listing, "exup_manager_site_b") == ["app-1", "web-1@site-b"]
    assert members(listing, "exup_status_update_available") == ["web-1@local"]
    assert members(listing, "exup_status_reboot_required") == ["web-1@site-b"]  # the BMC path's block, its staged 3.00 not running yet
    web1 = hostvars["web-1@local"]
    assert web1["exup_server_name"] == "web-1" and web1["exup_manager_id"] == "local" and web1["exup_os"] == "rhel9"
    assert web1["exup_module_versions"] == {"system-bios": "1.00"}
    assert web1["exup_modules"]["system-bios"]["newest"] == "2.00" and web1["exup_paths"] == ["agent"]
    assert hostvars["web-1@site-b"]["exup_paths"] == ["agent", "bmc"]
    assert hostvars["web-2"]["exup_modules"]["sdr"] == dict(hostvars["web-2"]["exup_modules"]["sdr"], status="-", manual_icon="latest")
    assert hostvars["db-1"]["exup_server_status"] == "latest"  # no package for its model
    # compose, groups, keyed_groups
    assert web1["exup_bmc_address"] == "web-1-bmc.lab.example" and web1["exup_bmc_protocol"] == "redfish"
    assert members(listing, "needs_bios") == ["web-1@local"]
    assert members(listing, "bios_2_00") == ["app-1", "web-1@site-b", "web-2"]
    assert not any("password" in name for variables in hostvars.values() for name in variables)
    # when exup_info last registered each server's versions (issue 13.1): the repository's time, the same over the service
    for variables in hostvars.values():
        read_at = datetime.datetime.fromisoformat(variables["exup_read_at"].replace("Z", "+00:00"))
        assert variables["exup_read_at"].endswith("Z") and abs(datetime.datetime.now(datetime.UTC) - read_at) < datetime.timedelta(hours=1)


def test_list_and_graph_from_a_local_repository(fleet: Repository, tmp_path: Path, collections_path: Path):
    source = write_source(tmp_path / "fleet.exup.yml", ["repository: %s" % fleet.store.root, *CONSTRUCTED])
    check_fleet(listed(source, collections_path))
    graph = run_inventory(source, collections_path, "--graph")
    assert graph.returncode == 0, graph.stderr
    assert "@exup_status_reboot_required:" in graph.stdout and "|--web-1@site-b" in graph.stdout


def test_list_and_graph_from_the_repository_service(fleet: Repository, service: RepoService, tmp_path: Path, collections_path: Path):
    lines = ["repository: %s" % service.base_url, "repository_user: read", "repository_ca_path: %s" % service.ca_path, "page_size: 2", *CONSTRUCTED]
    source = write_source(tmp_path / "remote.exup.yml", lines)
    env = inventory_env(collections_path, EXUP_REPOSITORY_PASSWORD=READ_PASSWORD)
    remote = listed(source, collections_path, env)
    check_fleet(remote)
    local = listed(write_source(tmp_path / "local.exup.yml", ["repository: %s" % fleet.store.root, *CONSTRUCTED]), collections_path)
    assert remote == local  # the same hosts, variables and groups over the wire, a page of two servers at a time
    graph = run_inventory(source, collections_path, "--graph", env=env)
    assert graph.returncode == 0 and "|--db-1" in graph.stdout, graph.stderr


def test_the_second_run_reads_the_cache(tmp_path: Path, collections_path: Path):
    store = tmp_path / "work" / "repo"
    store.parent.mkdir()
    build_repository(store)
    cache_dir = tmp_path / "cache"
    lines = ["repository: %s" % store, "cache: true", "cache_plugin: ansible.builtin.jsonfile", "cache_connection: %s" % cache_dir, "cache_timeout: 3600"]
    source = write_source(tmp_path / "cached.exup.yml", lines)
    first = listed(source, collections_path)
    assert list(cache_dir.iterdir()), "nothing was cached"
    shutil.rmtree(store)  # the repository is gone: only the cache can answer now
    assert listed(source, collections_path) == first
    flushed = run_inventory(source, collections_path, "--list", "--flush-cache")
    assert flushed.returncode != 0 and "[error repository_missing]" in flushed.stderr, flushed.stderr


def test_strict_makes_a_bad_compose_fail_and_not_strict_leaves_it_out(fleet: Repository, tmp_path: Path, collections_path: Path):
    lines = ["repository: %s" % fleet.store.root, "compose:", "  exup_bmc_port: no_such_variable.port"]
    loose = listed(write_source(tmp_path / "loose.exup.yml", [*lines, "strict: false"]), collections_path)
    assert "exup_bmc_port" not in loose["_meta"]["hostvars"]["web-2"]
    strict = run_inventory(write_source(tmp_path / "strict.exup.yml", [*lines, "strict: true"]), collections_path)
    assert strict.returncode != 0 and "no_such_variable" in strict.stderr, strict.stderr


@pytest.mark.parametrize(
    ("lines", "password", "code"),
    [
        (["repository: /nonexistent/exup"], None, "repository_missing"),
        (["repository: SERVICE", "repository_user: read", "repository_ca_path: CA"], "wrong-password", "auth_failed"),
        (["repository: SERVICE", "repository_ca_path: CA"], None, "argument_invalid"),
        (["repository: SERVICE"], READ_PASSWORD, "repository_unreachable"),  # the test CA is not in the system store
        (["repository: https://%s:%d" % (LOOPBACK, free_port()), "repository_timeout: 3"], ADMIN_PASSWORD, "repository_unreachable"),
        (["repository: https://admin:%s@%s:8080" % (ADMIN_PASSWORD, LOOPBACK)], ADMIN_PASSWORD, "argument_invalid"),
    ],
)
def test_a_bad_repository_url_or_password_is_one_line_with_its_code(service: RepoService, tmp_path: Path, collections_path: Path, lines, password, code):
    given = [line.replace("SERVICE", service.base_url).replace("CA", str(service.ca_path)) for line in lines]
    env = inventory_env(collections_path, **({"EXUP_REPOSITORY_PASSWORD": password} if password else {}))
    proc = run_inventory(write_source(tmp_path / "bad.exup.yml", given), collections_path, env=env)
    assert proc.returncode != 0
    assert "[error %s]" % code in proc.stderr, proc.stderr
    assert ADMIN_PASSWORD not in proc.stderr + proc.stdout and "wrong-password" not in proc.stderr


def test_a_file_not_named_exup_yml_is_not_this_plugins(fleet: Repository, tmp_path: Path, collections_path: Path):
    proc = run_inventory(write_source(tmp_path / "fleet.yml", ["repository: %s" % fleet.store.root]), collections_path)
    assert proc.returncode != 0 and "Unable to parse" in proc.stderr, proc.stderr
