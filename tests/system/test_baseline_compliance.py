"""exup_baseline_compliance_info for real (issue 13.1): ansible-playbook over a repository and the exup.fleet.exup inventory.

A repository made with the core API (signed packages of two severities and dates, servers registered), the inventory plugin
over it, group_vars/all.yml with a baseline as it would sit in git. One playbook checks every host (versions from the
inventory, read_at given), and once on localhost the whole repository; a second run with an old read_at is unknown everywhere;
a hostile baseline fails with baseline_invalid and no traceback. Then without read_at (issue 13.1): the time the repository
keeps of each server's last registration decides, through exup_read_at and scope repository alike: fresh ones pass or
fail, one registered 25 hours ago is reading_stale, one declared (never read) and one whose stored time was spoiled are
reading_time_unknown. About 15 s.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.tests.system import helpers as h

BASELINE = """\
ansible_connection: local
ansible_python_interpreter: "{{ ansible_playbook_python }}"
exup_baseline:
  name: estate-2026q4
  max_reading_age_hours: 24
  modules:
    system-bios:
      version: newest
      rule: not_older
      severity: [critical, recommended]
    bmc-firmware: "{{ bmc_target }}"  # templated: the action must template host vars, as a task argument would be
    sdr:
      rule: ignore
bmc_target: "3.00"
"""

PLAYBOOK = """\
- name: Check each host against its baseline
  hosts: all
  gather_facts: false
  tasks:
    - name: Check
      exup.fleet.exup_baseline_compliance_info:
        repository: "{{ repo }}"
        read_at: "{{ read_at }}"
      register: compliance
    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ compliance | to_nice_json }}"
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost

- name: Check the whole repository
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Check every registered server
      exup.fleet.exup_baseline_compliance_info:
        scope: repository
        repository: "{{ repo }}"
        baseline: "{{ hostvars[groups['all'][0]].exup_baseline }}"
        read_at: "{{ read_at }}"
      register: estate
      check_mode: true
    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ estate | to_nice_json }}"
        dest: "{{ out }}/_estate.json"
        mode: "0600"
"""


def build_repository(root: Path) -> Repository:
    key = SigningKey.generate()
    repo = Repository(str(root))
    files = []
    packages = [
        ("bios-200", "system-bios", "2.00", {"severity": "critical", "release_date": "2026-06-01"}),
        ("bios-300", "system-bios", "3.00", {"severity": "optional", "release_date": "2026-11-01"}),
        ("bmc-300", "bmc-firmware", "3.00", {"kind": "bmc"}),
    ]
    for package_id, module_id, version, fields in packages:
        path = root.parent / (package_id + ".zip")
        path.write_bytes(h.package_bytes(h.info(package_id, module_id, version, **fields), key))
        files.append(str(path))
    added = repo.add_files(files, h.keyring(key), mode="pinned")
    assert [item["result"] for item in added] == ["added"] * 3, added
    servers = [
        Server("local", "web-1", h.MODEL, "rhel9", {"system-bios": {"current": "2.00"}, "bmc-firmware": {"current": "3.00"}}),
        Server("local", "web-2", h.MODEL, "rhel9", {"system-bios": {"current": "1.00"}, "bmc-firmware": {"current": "3.00"}}),
        Server("local", "db-1", h.MODEL, "rhel9", {"system-bios": {"current": "3.00"}}),
    ]
    for server in servers:
        repo.record_server(server.manager_id, server)
    return repo


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline")
    (root / "work").mkdir()
    repo = build_repository(root / "work" / "repo")
    inventory = root / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "fleet.exup.yml").write_text("plugin: exup.fleet.exup\nrepository: %s\n" % repo.store.root)
    (inventory / "group_vars" / "all.yml").write_text(BASELINE)
    (root / "check.yml").write_text(PLAYBOOK)
    return root, repo


def run_check(
    root: Path, repo: Repository, read_at: str | None, name: str, extra: list[str] | None = None, playbook: str = "check.yml"
) -> tuple[subprocess.CompletedProcess, Path]:
    out = root / name
    out.mkdir()
    env = dict(os.environ, ANSIBLE_INVENTORY_ENABLED="exup.fleet.exup", ANSIBLE_INVENTORY_UNPARSED_FAILED="true", ANSIBLE_NOCOLOR="1")
    env.pop("EXUP_REPOSITORY_PASSWORD", None)
    variables = json.dumps({"repo": str(repo.store.root), "read_at": read_at, "out": str(out)})
    command = ["ansible-playbook", "-i", str(root / "inventory"), str(root / playbook), "-e", variables, *(extra or [])]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc, out


def load(out: Path, name: str) -> dict:
    return json.loads((out / (name + ".json")).read_text())


def test_hosts_and_repository_against_the_baseline(estate):
    root, repo = estate
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    proc, out = run_check(root, repo, now, "fresh")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    web1, web2, db1 = load(out, "web-1"), load(out, "web-2"), load(out, "db-1")
    assert (web1["verdict"], web1["reason_code"], web1["changed"], web1["source"]) == ("pass", "compliant", False, "inventory")
    rows = {row["module"]: row for row in web1["modules"]}
    # newest of critical/recommended is 2.00 (3.00 is optional)
    assert (rows["system-bios"]["target"], rows["system-bios"]["verdict"]) == ("2.00", "pass")
    assert rows["sdr"]["reason_code"] == "ignored"
    assert (web2["verdict"], {row["module"]: row["reason_code"] for row in web2["modules"]}["system-bios"]) == ("fail", "older")
    assert (db1["verdict"], {row["module"]: row["reason_code"] for row in db1["modules"]}["bmc-firmware"]) == ("fail", "not_installed")
    estate_result = load(out, "_estate")
    assert estate_result["summary"] == {"servers": 3, "pass": 1, "fail": 2, "unknown": 0}
    assert {item["server"]: item["verdict"] for item in estate_result["servers"]} == {"web-1": "pass", "web-2": "fail", "db-1": "fail"}


def test_a_stale_reading_is_unknown(estate):
    root, repo = estate
    old = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=25)).isoformat(timespec="seconds")
    proc, out = run_check(root, repo, old, "stale")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("web-1", "web-2", "db-1"):
        result = load(out, name)
        assert (result["verdict"], result["reason_code"]) == ("unknown", "reading_stale")
        assert {row["verdict"] for row in result["modules"]} == {"unknown"}
    assert load(out, "_estate")["summary"]["unknown"] == 3


def test_a_hostile_baseline_fails_cleanly(estate):
    root, repo = estate
    bad = json.dumps({"exup_baseline": {"name": "x", "modules": {"system-bios": {"version": "1.0", "colour": "red"}}}})
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    proc, _out = run_check(root, repo, now, "hostile", ["-e", bad])
    assert proc.returncode != 0
    assert "baseline_invalid" in proc.stdout and "unknown keys colour" in proc.stdout, proc.stdout


#: the same checks with no read_at: the repository's time of each server's last reading decides (issue 13.1)
STORED_PLAYBOOK = PLAYBOOK.replace('        read_at: "{{ read_at }}"\n', "")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """web-1 and web-2 registered now, db-1 25 hours ago (the baseline allows 24), new-1 declared by a manager's presence
    (never read), bad-1 registered and its stored time then spoiled by hand."""
    root = tmp_path_factory.mktemp("stored")
    (root / "work").mkdir()
    repo = build_repository(root / "work" / "repo")
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=25)
    db1 = Server("local", "db-1", h.MODEL, "rhel9", {"system-bios": {"current": "3.00"}, "bmc-firmware": {"current": "3.00"}})
    Repository(repo.store.root, clock=lambda: old).record_server("local", db1)
    repo.announce("site-b", [Server("site-b", "new-1", h.MODEL, "rhel9", {"system-bios": {"current": "2.00"}, "bmc-firmware": {"current": "3.00"}})])
    repo.record_server("local", Server("local", "bad-1", h.MODEL, "rhel9", {"system-bios": {"current": "2.00"}, "bmc-firmware": {"current": "3.00"}}))
    conn = sqlite3.connect(repo.store.db_path)
    with conn:
        conn.execute("UPDATE readings SET read_at = '2026-13-45T99:99:99Z{{ 7 * 7 }}' WHERE name = 'bad-1'")
    conn.close()
    inventory = root / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "fleet.exup.yml").write_text("plugin: exup.fleet.exup\nrepository: %s\n" % repo.store.root)
    (inventory / "group_vars" / "all.yml").write_text(BASELINE)
    (root / "stored.yml").write_text(STORED_PLAYBOOK)
    return root, repo


def test_without_read_at_the_stored_reading_time_decides(stored):
    root, repo = stored
    proc, out = run_check(root, repo, None, "stored", playbook="stored.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = {
        "web-1": ("pass", "compliant"),
        "web-2": ("fail", "modules_fail"),
        "db-1": ("unknown", "reading_stale"),  # would pass: its versions match, but they were read 25 hours ago
        "new-1": ("unknown", "reading_time_unknown"),
        "bad-1": ("unknown", "reading_time_unknown"),
    }
    for name, verdict in expected.items():
        result = load(out, name)
        assert (result["verdict"], result["reason_code"], result["source"]) == (*verdict, "inventory"), (name, result)
        if verdict[0] == "unknown":
            assert {row["verdict"] for row in result["modules"]} == {"unknown"}, (name, result)
    assert 24 * 3600 < load(out, "db-1")["reading_age"] < 26 * 3600
    assert load(out, "new-1")["read_at"] is None and load(out, "bad-1")["reading_age"] is None
    fresh = datetime.datetime.fromisoformat(load(out, "web-1")["read_at"].replace("Z", "+00:00"))
    assert abs(datetime.datetime.now(datetime.UTC) - fresh) < datetime.timedelta(minutes=10)
    whole = load(out, "_estate")
    assert {item["server"]: (item["verdict"], item["reason_code"]) for item in whole["servers"]} == expected
    assert whole["summary"] == {"servers": 5, "pass": 1, "fail": 1, "unknown": 3}
