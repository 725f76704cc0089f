"""The repository settings modules (exup_repo_settings, exup_repo_settings_info) run as processes, and the repository
service taking a password they changed without a restart.

Each module runs as ``python <module>.py args.json`` (what AnsiballZ ends up running), against a local store and
against the repository service (granian, tests/services/repo_service.py) over its URL. Passwords must never show: not
in a result, not in the module's output, not in the store's database or event log, not in the service's output.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from ansible_collections.exup.fleet.plugins.module_utils._exup.service import auth
from ansible_collections.exup.fleet.tests.services.repo_service import ADMIN_PASSWORD, READ_PASSWORD, RepoService

MODULES = Path(__file__).resolve().parents[2] / "plugins" / "modules"
NEW_ADMIN = "new admin password 7c2e"
NEW_READ = "new read password 19ad"
PROXY_SECRET = "proxy secret 5be1"
WEBHOOK_SECRET = "webhook secret 40f3"
SECRETS = (ADMIN_PASSWORD, READ_PASSWORD, NEW_ADMIN, NEW_READ, PROXY_SECRET, WEBHOOK_SECRET)
SECRET_NAMES = ("admin_password", "read_password", "proxy_password", "webhook_secret")


class Runner:
    """Runs a module as a process; keeps everything it printed, so a test can grep it for secrets."""

    def __init__(self, work: Path, collections_path: Path) -> None:
        self.work, self.collections_path = work, collections_path
        self.printed: list[str] = []

    def __call__(self, module: str, params: dict, check: bool = False, diff: bool = False) -> dict:
        args = self.work / ("args-%s.json" % module)
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(params, _ansible_check_mode=check, _ansible_diff=diff)}))
        env = dict(os.environ, PYTHONPATH=str(self.collections_path))
        proc = subprocess.run([sys.executable, str(MODULES / (module + ".py")), str(args)], check=False, capture_output=True, text=True, env=env, timeout=180)
        args.unlink()  # the arguments hold the passwords; the output must not
        self.printed += [proc.stdout, proc.stderr]
        assert "Traceback" not in proc.stderr, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def assert_no_secret_printed(self) -> None:
        printed = "\n".join(self.printed)
        for secret in SECRETS:
            assert secret not in printed


@pytest.fixture
def run(tmp_path: Path, collections_path: Path) -> Runner:
    return Runner(tmp_path, collections_path)


def store_state(store: Path) -> dict:
    """The store's files (bytes) and tables (rows, events apart): what a refused or check-mode task must leave alone."""
    found: dict = {}
    for path in sorted(store.rglob("*")):
        if path.is_file() and not path.name.startswith("repo.db") and path.name != "repo.lock":
            found[str(path.relative_to(store))] = path.read_bytes()
    conn = sqlite3.connect("file:%s?mode=ro" % (store / "repo.db"), uri=True)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            if table not in ("events", "meta"):
                found[table] = sorted(map(tuple, conn.execute("SELECT * FROM %s" % table)))
    finally:
        conn.close()
    return found


def event_codes(store: Path) -> list[str]:
    conn = sqlite3.connect("file:%s?mode=ro" % (store / "repo.db"), uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT code FROM events ORDER BY id")]
    finally:
        conn.close()


def stored_bytes(store: Path) -> bytes:
    """Every byte SQLite keeps of the store (database and WAL): no secret may be in them."""
    return b"".join(path.read_bytes() for path in sorted(store.glob("repo.db*")) if path.is_file())


SETTINGS = {
    "download_interval_hours": 6,
    "download_at": "02:30",
    "notify_webhooks": ["https://hooks.example/exup"],
    "webhook_secret": WEBHOOK_SECRET,
    "proxy_url": "http://proxy.example:3128",
    "proxy_username": "exup",
    "proxy_password": PROXY_SECRET,
    "proxy_auth": "digest",
    "admin_password": NEW_ADMIN,
    "read_password": NEW_READ,
}


def test_the_module_changes_the_settings_idempotently_and_never_shows_a_secret(tmp_path: Path, run: Runner):
    store = tmp_path / "repo"
    first = run("exup_repo_settings", dict(SETTINGS, repository=str(store)), diff=True)
    assert not first.get("failed"), first
    assert first["changed"] is True
    settings = first["settings"]
    assert {name: settings[name] for name in SECRET_NAMES} == {name: "changed" for name in SECRET_NAMES}
    assert {name: first["before"][name] for name in SECRET_NAMES} == {name: "not set" for name in SECRET_NAMES}
    assert (settings["download_interval_hours"], settings["download_at"], settings["proxy_auth"]) == (6, "02:30", "digest")
    assert first["diff"]["after"]["admin_password"] == "changed" and first["diff"]["before"]["admin_password"] == "not set"
    hashes = json.loads((store / "service-credentials.json").read_text())
    assert auth.verify_password(hashes["admin_hash"], NEW_ADMIN) and auth.verify_password(hashes["read_hash"], NEW_READ)
    assert (store / "service-credentials.json").stat().st_mode & 0o777 == 0o600
    assert (store / "service-secrets.json").stat().st_mode & 0o777 == 0o600

    # the same again: nothing changes, not even the hashes' salts
    state = store_state(store)
    again = run("exup_repo_settings", dict(SETTINGS, repository=str(store)))
    assert again["changed"] is False and again["settings"]["admin_password"] == "set", again
    assert store_state(store) == state

    # check mode and diff of a new password: "changed", never the value, and nothing written
    preview = run("exup_repo_settings", {"repository": str(store), "admin_password": ADMIN_PASSWORD}, check=True, diff=True)
    assert preview["changed"] is True and preview["diff"] == {
        "before": dict(again["settings"]),
        "after": dict(again["settings"], admin_password="changed"),
    }
    assert store_state(store) == state

    # the _info module reads without writing: no settings_read event; the settings module without options logs one
    logged = event_codes(store)
    info = run("exup_repo_settings_info", {"repository": str(store)})
    assert info["changed"] is False and info["settings"] == again["settings"]
    assert event_codes(store) == logged
    read = run("exup_repo_settings", {"repository": str(store)})
    assert read["changed"] is False and read["settings"] == info["settings"]
    assert event_codes(store) == logged + ["settings_read"]

    run.assert_no_secret_printed()
    data = stored_bytes(store)
    for secret in SECRETS:
        assert secret.encode() not in data


PLAY = """\
- name: Repository settings
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Set the schedule and the passwords
      exup.fleet.exup_repo_settings:
        repository: "{{ store }}"
        download_interval_hours: 24
        admin_password: "{{ admin }}"
        read_password: "{{ read }}"
        proxy_url: http://proxy.example:3128
        proxy_username: exup
        proxy_password: "{{ proxy }}"
      register: first
    - name: The same again changes nothing
      exup.fleet.exup_repo_settings:
        repository: "{{ store }}"
        download_interval_hours: 24
        admin_password: "{{ admin }}"
        proxy_password: "{{ proxy }}"
      register: second
    - name: Read them
      exup.fleet.exup_repo_settings_info:
        repository: "{{ store }}"
      register: info
    - name: Check
      ansible.builtin.assert:
        that:
          - first is changed
          - second is not changed
          - info.settings.admin_password == 'set'
          - info.settings.proxy_password == 'set'
          - info.settings.download_interval_hours == 24
"""


def test_a_playbook_with_diff_and_verbose_output_shows_no_password(tmp_path: Path, collections_path: Path):
    store = tmp_path / "repo"
    playbook = tmp_path / "settings.yml"
    playbook.write_text(PLAY)
    log = tmp_path / "ansible.log"
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_LOG_PATH=str(log),
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    extra = {"store": str(store), "admin": NEW_ADMIN, "read": NEW_READ, "proxy": PROXY_SECRET}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-e", json.dumps(extra), "--diff", "-vvv"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '"admin_password": "changed"' in proc.stdout  # the diff and the result say it changed, not what it is
    for text in (proc.stdout, proc.stderr, log.read_text()):
        for secret in (NEW_ADMIN, NEW_READ, PROXY_SECRET):
            assert secret not in text
    for secret in (NEW_ADMIN, NEW_READ, PROXY_SECRET):
        assert secret.encode() not in stored_bytes(store)


BAD: list[tuple[dict, str, str]] = [
    ({"download_interval_hours": 745}, "setting_invalid", "download_interval_hours must be 0 (no scheduled download) or a whole number of hours from 1 to 744"),
    ({"download_at": "25:00"}, "setting_invalid", "download_at must be the time of day of the first run, UTC, as HH:MM"),
    ({"notify_webhooks": ["ftp://hooks.example/x"]}, "setting_invalid", "notify_webhooks[0] is not an http:// or https:// URL"),
    ({"proxy_url": "http://user:pw@proxy.example:3128"}, "setting_invalid", "give proxy_username and proxy_password instead"),
    ({"admin_password": "too short"}, "password_weak", "the password must have at least 12 characters"),
    ({"download_interval_hours": 2, "read_password": "tiny"}, "password_weak", "the password must have at least 12 characters"),
]


@pytest.mark.parametrize(("wanted", "code", "words"), BAD, ids=[code + "-" + ",".join(wanted) for wanted, code, _w in BAD])
def test_a_bad_value_fails_the_task_and_changes_nothing(tmp_path: Path, run: Runner, wanted: dict, code: str, words: str):
    store = tmp_path / "repo"
    assert not run("exup_repo_settings", {"repository": str(store), "download_interval_hours": 1, "admin_password": NEW_ADMIN}).get("failed")
    state = store_state(store)
    logged = event_codes(store)
    answer = run("exup_repo_settings", dict(wanted, repository=str(store)))
    assert answer.get("failed") is True and answer["error"] == code and words in answer["msg"], answer
    assert store_state(store) == state
    assert event_codes(store) == logged + ["settings_change_failed"]
    printed = "\n".join(run.printed)
    assert "too short" not in printed and '"tiny"' not in printed and "user:pw" not in answer["msg"]


def test_the_service_takes_a_changed_password_without_a_restart(tmp_path: Path, run: Runner):
    store = tmp_path / "store"
    service = RepoService(store)
    service.directory = tmp_path / "service"  # keep its output to grep it
    with service:
        assert service.get("/v1/settings").status_code == 200
        assert requests.get(service.url("/v1/packages"), auth=("read", READ_PASSWORD), timeout=30).status_code == 200
        changed = run("exup_repo_settings", {"repository": str(store), "admin_password": NEW_ADMIN, "read_password": NEW_READ})
        assert changed["changed"] is True, changed
        old = requests.get(service.url("/v1/settings"), auth=("admin", ADMIN_PASSWORD), timeout=30)
        assert old.status_code == 401 and old.json()["error"] == "auth_failed"
        assert requests.get(service.url("/v1/settings"), auth=("admin", NEW_ADMIN), timeout=30).status_code == 200
        assert requests.get(service.url("/v1/packages"), auth=("read", READ_PASSWORD), timeout=30).status_code == 401
        assert requests.get(service.url("/v1/packages"), auth=("read", NEW_READ), timeout=30).status_code == 200

        # the same modules over the service's URL (a manager elsewhere): the settings, and a password changed remotely
        remote = {"repository": service.base_url, "repository_password": NEW_ADMIN}
        schedule = run("exup_repo_settings", dict(remote, download_interval_hours=12, download_at="04:00", proxy_password=PROXY_SECRET))
        assert schedule.get("failed") is not True and schedule["changed"] is True, schedule
        assert (schedule["settings"]["download_interval_hours"], schedule["settings"]["proxy_password"]) == (12, "changed")
        again = run("exup_repo_settings", dict(remote, download_interval_hours=12, proxy_password=PROXY_SECRET))
        assert again["changed"] is False, again
        info = run("exup_repo_settings_info", remote)
        assert info["settings"]["download_interval_hours"] == 12
        assert {name: info["settings"][name] for name in SECRET_NAMES} == {
            "admin_password": "set",
            "read_password": "set",
            "proxy_password": "set",
            "webhook_secret": "not set",
        }
        weak = run("exup_repo_settings", dict(remote, admin_password="short"))
        assert weak.get("failed") is True and weak["error"] == "password_weak", weak
        output = (service.workdir / "exup-service.out").read_text(errors="replace")
    run.assert_no_secret_printed()
    for secret in SECRETS:
        assert secret not in output and secret.encode() not in stored_bytes(store)
