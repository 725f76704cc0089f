"""Package bytes that come from the repository service, not through the controller (issue 11 item 3).

- A Redfish BMC (the sushy-tools emulator, HTTPS) runs a SimpleUpdate whose ImageURI is a pool ticket of the service:
  the BMC downloads the file from the service itself, with no password.
- A lab server (sshd with its own filesystem view) gets an agent apply whose packages its exup_host fetches from the
  service with pool tickets; the controller sends no package over ssh.
- Pool tickets refuse what they do not admit: another file, a changed signature, an expired one.

The service's access log (one line per request, without the query) shows who fetched what.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.remote import RemoteOptions, RemoteRepository
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import ADDED, Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey
from ansible_collections.exup.fleet.tests.lab.lab import Lab
from ansible_collections.exup.fleet.tests.services.redfish import RedfishBmc
from ansible_collections.exup.fleet.tests.services.repo_service import ADMIN_PASSWORD, RepoService
from ansible_collections.exup.fleet.tests.services.tls import make_tls_files
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah
from ansible_collections.exup.fleet.tests.system.test_bmc_path import build_bmc_packages, package_id


def access_lines(service: RepoService) -> list[str]:
    return [line for line in (service.workdir / "exup-service.out").read_text(errors="replace").splitlines() if '"GET /v1/pool/' in line]


def remote_of(service: RepoService) -> RemoteRepository:
    return RemoteRepository(RemoteOptions(service.base_url, ADMIN_PASSWORD, ca_path=str(service.ca_path), manager_id="site-a"))


# --------------------------------------------------------------------------- the BMC fetches from the service
@pytest.fixture(scope="module")
def bmc_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("service-bmc")
    key = SigningKey.generate()
    pem = root / "vendor.pub"
    pem.write_bytes(key.public_pem())
    store = root / "store"
    added = Repository(str(store)).add_files(build_bmc_packages(root / "packages", key), KeyRing([key.public_key]), mode="pinned")
    assert {row["result"] for row in added} == {ADDED}
    (root / "bmc-tls").mkdir()
    bmc_tls = make_tls_files(root / "bmc-tls")
    with RepoService(store, tls=True, access_log=True) as service:
        bmc = RedfishBmc(tls=bmc_tls).start()
        bmc.remote_ca = str(service.ca_path)  # the BMC trusts the service's CA for its ImageURI
        try:
            yield {"root": root, "pem": pem, "store": store, "service": service, "bmc": bmc}
        finally:
            bmc.stop()


def bmc_play(world: dict, check_mode: bool = False) -> dict:
    service, bmc, root = world["service"], world["bmc"], world["root"]
    play = root / "bmc.yml"
    result = root / "bmc-result.json"
    play.write_text(f"""\
---
- name: SimpleUpdate with the image from the repository service
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Apply the BIOS through the BMC
      exup.fleet.exup_apply:
        via: bmc
        server_name: bmc-server-1
        bmc_address: "{bmc.host}"
        bmc_port: {bmc.port}
        bmc_username: "{bmc.user}"
        bmc_password: "{bmc.password}"
        bmc_ca_path: "{bmc.ca_path}"
        repository: "{service.base_url}"
        repository_password: "{ADMIN_PASSWORD}"
        repository_ca_path: "{service.ca_path}"
        manager_id: site-a
        trusted_keys: ["{world["pem"]}"]
        update_method: simple_update
        modules: [system-bios]
        allow_reboot: true
      check_mode: {str(check_mode).lower()}
      register: applied
    - name: Keep the result
      ansible.builtin.copy:
        content: "{{{{ applied | to_json }}}}"
        dest: "{result}"
        mode: "0600"
      check_mode: false
""")
    proc = ah.run_playbook(_NoLab(), play, None, "-i", "localhost,", "-c", "local", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ADMIN_PASSWORD not in proc.stdout + proc.stderr
    return json.loads(result.read_text())


class _NoLab:
    """ah.run_playbook's environment without a lab: the collection from the test's own path."""

    @staticmethod
    def env() -> dict:
        import os

        from ansible_collections.exup.fleet.tests.services.repo_service import collections_root

        return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_root()), ANSIBLE_PYTHON_INTERPRETER=__import__("sys").executable)


def test_a_bmc_simple_update_fetches_its_image_from_the_service(bmc_world):
    service, bmc = bmc_world["service"], bmc_world["bmc"]
    planned = bmc_play(bmc_world, check_mode=True)
    assert planned["package_transfer"] == "service" and not bmc.downloads  # check mode: a plan, no download
    applied = bmc_play(bmc_world)
    assert applied["package_transfer"] == "service", applied
    assert [(row["module_id"], row["status"]) for row in applied["results"]] == [("system-bios", "succeeded")], applied
    stored = {package.package_id: package for package in Repository(str(bmc_world["store"])).packages()}
    newest = stored[package_id("system-bios", "1.20")]
    assert len(bmc.downloads) == 1, bmc.downloads
    download = bmc.downloads[0]
    assert download["url"].startswith(service.base_url + wire.pool_path(newest.sha256) + "?expires="), download
    assert (download["status"], download["bytes"], download["user"], download["error"]) == (200, newest.size, None, None)
    lines = access_lines(service)
    assert len(lines) == 1 and wire.pool_path(newest.sha256) in lines[0] and '" 200 ' in lines[0], lines
    assert "ticket=" not in (service.workdir / "exup-service.out").read_text()  # the ticket is a credential: not in the log
    assert bmc.versions()["BIOS"] == "1.20"


# --------------------------------------------------------------------------- pool tickets
def test_a_pool_ticket_admits_one_file_until_it_expires(bmc_world):
    service = bmc_world["service"]
    files = sorted(Repository(str(bmc_world["store"])).packages(), key=lambda package: package.package_id)
    first, second = files[0], files[1]
    urls = remote_of(service).ticket_urls([first], seconds=60)
    good = urls[first.sha256]
    answer = requests.get(good, verify=str(service.ca_path), timeout=30)
    assert answer.status_code == 200 and len(answer.content) == first.size
    query = good.split("?", 1)[1]
    refusals = {
        "another file": service.url(wire.pool_path(second.sha256) + "?" + query),
        "a changed signature": good[:-1] + ("0" if good[-1] != "0" else "1"),
        "a later expiry": good.replace("expires=", "expires=9"),
    }
    for what, url in refusals.items():
        refused = requests.get(url, verify=str(service.ca_path), timeout=30)
        assert (refused.status_code, refused.json()["error"]) == (403, "ticket_invalid"), what
        assert refused.json()["msg"] == "this pool ticket is not valid for this file", what
    unsigned = requests.get(good.split("&ticket=")[0], verify=str(service.ca_path), timeout=30)  # no ticket: Basic auth is asked
    assert (unsigned.status_code, unsigned.json()["error"]) == (401, "auth_required")
    expired = remote_of(service).ticket_urls([first], seconds=1)[first.sha256]
    time.sleep(2.1)  # the ticket's own lifetime, not a timing assertion
    answer = requests.get(expired, verify=str(service.ca_path), timeout=30)
    assert (answer.status_code, answer.json()["error"], answer.json()["msg"]) == (403, "ticket_expired", "this pool ticket has expired")


def test_tickets_are_asked_with_credentials_and_bounded(bmc_world):
    service = bmc_world["service"]
    digest = Repository(str(bmc_world["store"])).packages()[0].sha256
    anonymous = service.request("POST", "/v1/pool/tickets", user=None, json={"sha256": [digest]})
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "auth_required")
    bodies = [{"sha256": [digest], "seconds": 0}, {"sha256": [digest], "seconds": wire.TICKET_MAX_SECONDS + 1}, {"sha256": ["../etc/passwd"]}, {"sha256": []}]
    for body in bodies:
        refused = service.request("POST", "/v1/pool/tickets", user="read", json=body)
        assert (refused.status_code, refused.json()["error"]) == (400, "request_invalid"), body


# --------------------------------------------------------------------------- a managed server fetches from the service
@pytest.fixture(scope="module")
def agent_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("service-agent")
    lab = Lab(root / "lab", hosts=1)
    lab.up()
    try:
        store, pem = lab.make_repository(root / "store")
        with RepoService(store, tls=True, access_log=True) as service:
            yield {"root": root, "lab": lab, "store": store, "pem": pem, "service": service, "host": lab.names[0]}
    finally:
        lab.down()


def test_an_agent_apply_fetches_its_packages_from_the_service(agent_world):
    service, lab, root = agent_world["service"], agent_world["lab"], agent_world["root"]
    common = f"""\
        repository: "{service.base_url}"
        repository_password: "{ADMIN_PASSWORD}"
        repository_ca_path: "{service.ca_path}"
        manager_id: site-a
        trusted_keys: ["{agent_world["pem"]}"]
        host_root: "{{{{ exup_host_root }}}}"
"""
    play = root / "apply.yml"
    play.write_text(f"""\
---
- name: An apply from the repository service
  hosts: {agent_world["host"]}
  gather_facts: false
  tasks:
    - name: Install the agent (its package goes through the controller)
      exup.fleet.exup_agent:
{common}        license_accepted: true
    - name: Scan and register the server at the remote repository
      exup.fleet.exup_info:
        repository: "{service.base_url}"
        repository_password: "{ADMIN_PASSWORD}"
        repository_ca_path: "{service.ca_path}"
        manager_id: site-a
        host_root: "{{{{ exup_host_root }}}}"
        register_server: true
      register: scanned
    - name: Apply the RAID controller firmware (the host fetches it)
      exup.fleet.exup_apply:
{common}        modules: [raid-controller]
        poll_interval: 1
      register: applied
    - name: Keep the result
      ansible.builtin.copy:
        content: "{{{{ {{'applied': applied, 'scanned': scanned}} | to_json }}}}"
        dest: "{root}/apply-result.json"
        mode: "0600"
      delegate_to: localhost
""")
    before = len(access_lines(service))
    proc = ah.run_playbook(lab, play, None, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((root / "apply-result.json").read_text())
    applied, scanned = results["applied"], results["scanned"]
    assert not scanned["failed"] and "raid-controller" in scanned["modules"], scanned
    with Repository(str(agent_world["store"])).read() as index:
        assert index.server_row("site-a", agent_world["host"]) is not None  # registered at the remote repository
    assert applied["package_transfer"] == "service", applied
    assert [(row["module_id"], row["status"]) for row in applied["results"]] == [("raid-controller", "succeeded")], applied
    stored = {package.package_id: package for package in Repository(str(agent_world["store"])).packages()}
    fetched = access_lines(service)[before:]
    raid = [package for package in stored.values() if package.module_id == "raid-controller"]
    assert any(wire.pool_path(package.sha256) in line and '" 200 ' in line for package in raid for line in fetched), fetched
    assert ADMIN_PASSWORD not in proc.stdout + proc.stderr


def test_the_repository_password_is_never_shown(bmc_world):
    """-vvv shows a task's arguments and results: the repository password stays out of them (no_log), as does the ticket."""
    service, root = bmc_world["service"], bmc_world["root"]
    play = root / "nolog.yml"
    play.write_text(f"""\
---
- name: A remote listing at -vvv
  hosts: localhost
  gather_facts: false
  tasks:
    - name: List the remote repository
      exup.fleet.exup_package_info:
        repository: "{service.base_url}"
        repository_password: "{{{{ repository_password }}}}"
        repository_ca_path: "{service.ca_path}"
    - name: A wrong password fails without showing either
      exup.fleet.exup_package_info:
        repository: "{service.base_url}"
        repository_password: "{{{{ repository_password }}}}-but-wrong"
        repository_ca_path: "{service.ca_path}"
      ignore_errors: true
""")
    secret = {"repository_password": ADMIN_PASSWORD}  # a variable, as a vault would give it
    proc = ah.run_playbook(_NoLab(), play, secret, "-i", "localhost,", "-c", "local", "-vvv", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert "auth_failed" in output and "wrong user name or password" in output
    assert ADMIN_PASSWORD not in output.replace(json.dumps(secret), "")  # not even the wrong one, which contains it
