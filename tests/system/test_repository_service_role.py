"""roles/repository, repository_action service (issue 12 item 2): the role installs the repository service on a lab host
over ssh and runs it there; the test reaches it over loopback with HTTPS.

The lab hosts (docs/lab.md) have no systemd, so this is the supervised path (a setsid'd sh supervisor with a pid file):
the first run installs and starts it, a second run and a check-mode run change nothing, a changed configuration
restarts it (a handler), a service that dies is started again by the supervisor, and state stopped stops it. The
Python is the lab host's /opt/exup-lab/python (the repository's .venv bound read-only into the chroot: it has granian,
starlette, cryptography, lxml), given as repository_service_python; the collection's code reaches the host only through
exup.fleet.exup_service_code (the host cannot see the checkout).

systemd is not PID 1 on this machine, so the systemd path cannot run here: its unit is rendered through the role
(tasks_from service_unit) and checked with `systemd-analyze verify`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from ansible_collections.exup.fleet.tests.services.ports import free_port, port_accepts
from ansible_collections.exup.fleet.tests.services.tls import make_tls_files
from ansible_collections.exup.fleet.tests.system.agent_helpers import program, run_playbook, wait_for

HOST = "r120h-3"
ADMIN = "admin-password-for-tests"
READ = "read-password-for-tests"
RECAP = re.compile(r"^\S+\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
PLAY = """\
- name: Install and run the repository service
  hosts: {host}
  gather_facts: false
  roles:
    - role: exup.fleet.repository
"""
UNIT_PLAY = """\
- name: Render the unit only
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: The role's unit
      ansible.builtin.include_role:
        name: exup.fleet.repository
        tasks_from: service_unit
"""


def changed(done: subprocess.CompletedProcess) -> int:
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    recap = RECAP.findall(done.stdout)
    assert len(recap) == 1, done.stdout[-2000:]
    return int(recap[0][1])


def processes_in(root: Path) -> list[int]:
    """The pids of processes whose root directory is the lab host's root (what runs inside that host)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root") == str(root):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def children_of(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def answers(get, path: str) -> bool:
    """True when the service answers 200 (a worker still starting resets the connection: not yet)."""
    try:
        return get(path).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def host_setup(lab, tmp_path: Path):
    root = lab.host_root(HOST)
    address = lab.address(HOST)
    (tmp_path / "tls").mkdir()
    tls = make_tls_files(tmp_path / "tls", address=address)
    port = free_port()
    variables = {
        "repository_action": "service",
        "repository_path": "/var/lib/exup/repository",
        "repository_service_python": "/opt/exup-lab/python/bin/python",
        "repository_service_host": address,
        "repository_service_port": port,
        "repository_service_tls_certificate": "/etc/exup/tls/server.pem",
        "repository_service_tls_key": "/etc/exup/tls/server.key",
        "repository_service_tls_certificate_src": str(tls.cert_path),
        "repository_service_tls_key_src": str(tls.key_path),
        "repository_service_admin_password": ADMIN,
        "repository_service_read_password": READ,
        "repository_service_download_interval_hours": 6,
        "repository_service_download_at": "02:30",
        "repository_proxy_url": "http://127.0.0.1:3128",
        "repository_trusted_keys": [lab.vendor_pem_path.read_text()],
        "repository_service_start_timeout": 30,
    }
    playbook = tmp_path / "service.yml"
    playbook.write_text(PLAY.format(host=HOST))
    (root / "etc" / "exup" / "tls").mkdir(parents=True, exist_ok=True)
    try:
        yield root, address, port, tls, variables, playbook
    finally:  # whatever happened: nothing the role started outlives the test
        for pid in processes_in(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_the_role_installs_runs_restarts_and_stops_the_service_on_a_host_without_systemd(lab, host_setup, tmp_path: Path):
    root, address, port, tls, variables, playbook = host_setup
    url = f"https://{address}:{port}"

    def get(path: str, user: str = "admin", password: str = ADMIN) -> requests.Response:
        return requests.get(url + path, auth=(user, password), verify=str(tls.ca_path), timeout=10)

    first = run_playbook(lab, playbook, variables, timeout=120)
    assert changed(first) > 0
    assert "exup repository service started (supervised, /opt/exup-lab/python/bin/python)" in first.stdout
    about = get("/v1/about")
    assert about.status_code == 200, about.text
    assert about.json()["service"] and about.json()["api_version"] >= 1
    settings = get("/v1/settings").json()
    assert settings["settings"]["download_interval_hours"] == 6, settings
    assert settings["settings"]["download_at"] == "02:30"
    assert settings["settings"]["proxy_url"] == "http://127.0.0.1:3128"
    assert get("/v1/about", "read", READ).status_code == 200
    assert get("/v1/settings", "read", READ).status_code == 403
    assert get("/v1/about", "admin", "not-the-password").status_code == 401

    # it runs inside the lab host (its root), from the code and config the role wrote there
    supervisor = int((root / "opt/exup/service/run/supervisor.pid").read_text())
    assert supervisor in processes_in(root)
    config = json.loads((root / "etc/exup/repository-service.json").read_text())
    assert config["store"] == "/var/lib/exup/repository" and config["port"] == port and config["workers"] == 1
    assert config["trusted_keys"] == variables["repository_trusted_keys"]
    assert (root / "opt/exup/service/lib/ansible_collections/exup/fleet/plugins/module_utils/_exup/service/main.py").is_file()
    assert oct((root / "etc/exup/tls/server.key").stat().st_mode & 0o777) == "0o600"
    credentials = (root / "var/lib/exup/repository/service-credentials.json").read_text()
    assert "$argon2id$" in credentials and ADMIN not in credentials and READ not in credentials
    assert ADMIN not in first.stdout and READ not in first.stdout

    # the same run again, and in check mode: nothing changes, the same process serves
    assert changed(run_playbook(lab, playbook, variables, timeout=120)) == 0
    assert changed(run_playbook(lab, playbook, variables, "--check", "--diff", timeout=120)) == 0
    assert int((root / "opt/exup/service/run/supervisor.pid").read_text()) == supervisor

    # a changed configuration restarts it (the handler)
    service = children_of(supervisor)
    assert len(service) == 1, service
    third = run_playbook(lab, playbook, dict(variables, repository_service_workers=2), timeout=120)
    assert changed(third) > 0
    assert "RUNNING HANDLER [exup.fleet.repository : Restart the supervised exup repository service]" in third.stdout
    assert json.loads((root / "etc/exup/repository-service.json").read_text())["workers"] == 2
    assert wait_for(lambda: answers(get, "/v1/about"), 30, 0.2, "the restarted service to answer")
    restarted = int((root / "opt/exup/service/run/supervisor.pid").read_text())
    assert restarted != supervisor and supervisor not in processes_in(root)

    # the supervisor starts a service that died again
    (granian,) = children_of(restarted)
    os.kill(granian, signal.SIGKILL)
    wait_for(lambda: [pid for pid in children_of(restarted) if pid != granian], 30, 0.2, "the supervisor to start the service again")
    wait_for(lambda: port_accepts(port, address), 45, 0.2, "the restarted service's port")
    assert wait_for(lambda: answers(get, "/v1/about"), 30, 0.2, "the restarted service to answer")
    assert "the service exited with status" in (root / "var/log/exup/repository-service.log").read_text()

    # state stopped stops it: no process of the role is left in the host, the port is closed
    stopped = run_playbook(lab, playbook, dict(variables, repository_service_workers=2, repository_service_state="stopped"), timeout=120)
    assert changed(stopped) == 1, stopped.stdout[-3000:]
    assert not port_accepts(port, address)
    assert not (root / "opt/exup/service/run/supervisor.pid").exists()
    assert processes_in(root) == []


def test_the_systemd_unit_renders_and_verifies(tmp_path: Path, collections_path: Path):
    """Rendered through the role; `systemd-analyze verify` checks it offline (systemd is not PID 1 here, so not run)."""
    playbook = tmp_path / "unit.yml"
    playbook.write_text(UNIT_PLAY)
    variables = {
        "repository_service_unit_dir": str(tmp_path),
        "repository_service_interpreter": sys.executable,
        "repository_service_home": "/opt/exup/service",
        "repository_service_config_path": "/etc/exup/repository-service.json",
    }
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_NOCOLOR="1")
    argv = [program("ansible-playbook"), "-i", "localhost,", str(playbook), "-e", json.dumps(variables)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert changed(done) == 1
    unit = tmp_path / "exup-repository.service"
    text = unit.read_text()
    assert f"ExecStart={sys.executable} -m ansible_collections.exup.fleet.plugins.module_utils._exup.service.main /etc/exup/repository-service.json" in text
    assert "Environment=PYTHONPATH=/opt/exup/service/lib" in text and "Restart=on-failure" in text
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    # the check can fail: a broken unit is reported
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("Type=exec", "Type=sometimes"))
    verify = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, timeout=60, check=False)
    assert "Failed to parse service type" in verify.stderr


def test_a_service_that_does_not_start_fails_the_role_with_the_reason_from_its_log(lab, tmp_path: Path):
    """No admin password was ever set: the service refuses to start (credentials_missing); the readiness check's deadline
    ends the run with service_not_ready and the end of the service's log."""
    host = "r120h-2"
    root = lab.host_root(host)
    playbook = tmp_path / "service.yml"
    playbook.write_text(PLAY.format(host=host))
    variables = {
        "repository_action": "service",
        "repository_service_python": "/opt/exup-lab/python/bin/python",
        "repository_service_host": lab.address(host),
        "repository_service_port": free_port(),
        "repository_service_start_timeout": 3,
        "repository_service_manager": "supervised",
    }
    try:
        done = run_playbook(lab, playbook, variables, timeout=120)
        assert done.returncode != 0
        assert "[service_not_ready]" in done.stdout and "credentials_missing" in done.stdout, done.stdout[-3000:]
    finally:
        for pid in processes_in(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
