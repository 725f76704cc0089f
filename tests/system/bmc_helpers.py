# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the BMC path system tests (test_bmc_path.py): BMC packages, what a BMC and the repository hold, the IPMI BMC's process.

Standard library only at import, so that a playbook task can run this file as a script:

    python bmc_helpers.py snapshot REPO SERVER BMC_URL CA USER PASSWORD [SYSTEM]
        prints {"firmware": {inventory id: version}, "tasks": [...], "bmc_modules": {...}, "events": [...]}:
        what the Redfish BMC reports (over its own API: the emulator's truth, read between playbook steps)
        and what the repository keeps for SERVER.
    python bmc_helpers.py ipmi --firmware 2.05 --user admin --password PW
        runs a fake IPMI BMC (tests/services/ipmi_bmc.py) in this process: prints one JSON line (host,
        port), then answers "state" on stdin with one JSON line (requests, unexpected requests, power
        history, cold resets, logins, errors) until "stop" or end of input.

The fake IPMI BMC runs in a process of its own: pyghmi in the test process and an ansible-playbook
child talking to a BMC served by a thread of the test process hung once.
"""

from __future__ import annotations

import base64
import json
import os
import select
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO

HELPERS = Path(__file__).resolve()
REPO_ROOT = HELPERS.parents[2]


# --------------------------------------------------------------------------- the repository


def query(repo, sql: str, *args) -> list:
    conn = sqlite3.connect(str(Path(repo) / "repo.db"))
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def bmc_modules(repo, server: str, manager: str = "local") -> dict:
    """module_id -> {previous, block, staged} the repository keeps for a server managed through its BMC."""
    rows = query(repo, "SELECT module_id, previous, block, staged FROM bmc_modules WHERE manager_id = ? AND server = ?", manager, server)
    return {module_id: {"previous": previous, "block": block, "staged": staged} for module_id, previous, block, staged in rows}


def events(repo, server: str) -> list:
    """[[code, level, detail]] of one server, in order."""
    found = []
    for code, level, detail in query(repo, "SELECT code, level, detail FROM events ORDER BY id"):
        detail = json.loads(detail)
        if detail.get("server") == server:
            found.append([code, level, detail])
    return found


# --------------------------------------------------------------------------- a Redfish BMC over its API


def redfish_get(base_url: str, path: str, ca: str, user: str, password: str):
    context = ssl.create_default_context(cafile=ca)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(base_url + path, headers={"Authorization": f"Basic {token}", "Accept": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    with opener.open(request, timeout=60) as response:
        return json.loads(response.read())


def bmc_state(base_url: str, ca: str, user: str, password: str, system: str | None = None) -> dict:
    """The firmware inventory (id -> version; staged images are '<id>-Pending') and the update tasks (state, target)."""
    inventory = redfish_get(base_url, "/redfish/v1/UpdateService/FirmwareInventory", ca, user, password)
    firmware = {}
    for member in inventory["Members"]:
        item = redfish_get(base_url, member["@odata.id"], ca, user, password)
        links = [link["@odata.id"] for link in item.get("RelatedItem", [])]
        if system is None or any(link.startswith(system) or link.startswith(system.replace("/Systems/", "/Managers/")) for link in links):
            firmware[item["Id"]] = item["Version"]
    tasks = []
    for member in redfish_get(base_url, "/redfish/v1/TaskService/Tasks", ca, user, password)["Members"]:
        task = redfish_get(base_url, member["@odata.id"], ca, user, password)
        tasks.append({"state": task["TaskState"], "uri": task["Payload"]["TargetUri"], "messages": [message["MessageId"] for message in task["Messages"]]})
    return {"firmware": firmware, "tasks": tasks}


def snapshot(repo, server, base_url, ca, user, password, system=None) -> dict:
    found = bmc_state(base_url, ca, user, password, system)
    found.update(bmc_modules=bmc_modules(repo, server), events=events(repo, server))
    return found


def snapshot_task(name: str, server: str) -> str:
    """A playbook task of a scenario (host vars bmc, repos) that records snapshot() of its BMC and server as r_<name>.

    name must start with "snap": ah.Scenarios.results() then parses what it printed.
    """
    return (
        f"- name: Snapshot ({name})\n"
        "  ansible.builtin.command:\n"
        "    argv: [\"{{ ansible_playbook_python }}\", " + json.dumps(str(HELPERS)) + ", snapshot, \"{{ repos.default }}\", "
        f"{server}, \"{{{{ bmc.url }}}}\", \"{{{{ bmc.ca }}}}\", \"{{{{ bmc.user }}}}\", \"{{{{ bmc.password }}}}\"]\n"
        "  changed_when: false\n"
        f"  register: r_{name}\n"
    )


# --------------------------------------------------------------------------- the IPMI BMC in its own process


class IpmiProcess:
    """A fake IPMI BMC served by a child process (`bmc_helpers.py ipmi`): .host, .port, .state()."""

    def __init__(self, firmware: str, user: str, password: str):
        self.argv = [sys.executable, str(HELPERS), "ipmi", "--firmware", firmware, "--user", user, "--password", password]
        self.process: subprocess.Popen[str] | None = None
        self.host: str | None = None
        self.port: int | None = None

    def __enter__(self):
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by __exit__
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        try:
            started = json.loads(self._line(120))
        except BaseException:
            self.__exit__()
            raise
        self.host, self.port = started["host"], started["port"]
        return self

    def _child(self) -> tuple[subprocess.Popen[str], IO[str], IO[str]]:
        """The child process and its stdin and stdout (both piped by __enter__)."""
        process = self.process
        if process is None or process.stdin is None or process.stdout is None:
            raise AssertionError("the IPMI BMC process is not started: use IpmiProcess in a with statement")
        return process, process.stdin, process.stdout

    def _line(self, timeout: float) -> str:
        process, _stdin, stdout = self._child()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _unused, _unused2 = select.select([stdout], [], [], 0.5)
            if ready:
                line = stdout.readline()
                if not line:
                    break
                return line
            if process.poll() is not None:
                break
        raise AssertionError(f"the IPMI BMC process did not answer (exit status {process.poll()})")

    def state(self) -> dict:
        _process, stdin, _stdout = self._child()
        stdin.write("state\n")
        stdin.flush()
        return json.loads(self._line(60))

    def __exit__(self, *exc_info):
        if self.process is None:
            return
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process.stdout.close()


def serve_ipmi(argv) -> int:
    """`ipmi` command: one FakeIpmiBmc until "stop" on stdin (see the module doc)."""
    import argparse  # pylint: disable=import-outside-toplevel
    import dataclasses  # pylint: disable=import-outside-toplevel

    sys.path.insert(0, str(REPO_ROOT / "build" / "collections"))
    from ansible_collections.exup.fleet.tests.services.ipmi_bmc import FakeIpmiBmc  # pylint: disable=import-outside-toplevel

    parser = argparse.ArgumentParser()
    parser.add_argument("--firmware", default="2.10")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="bmc-s3cret")
    args = parser.parse_args(argv)

    def plain(item):
        return {key: value.hex() if isinstance(value, bytes) else value for key, value in dataclasses.asdict(item).items()}

    with FakeIpmiBmc({args.user: args.password}, firmware_revision=args.firmware) as bmc:
        print(json.dumps({"host": bmc.address, "port": bmc.port}), flush=True)
        for line in sys.stdin:
            if line.strip() != "state":
                break
            print(
                json.dumps(
                    {
                        "requests": [plain(item) for item in bmc.requests],
                        "unexpected_requests": [plain(item) for item in bmc.unexpected_requests],
                        "power_history": [plain(item) for item in bmc.power_history],
                        "cold_resets": bmc.cold_resets,
                        "logins": [plain(item) for item in bmc.logins],
                        "errors": bmc.errors,
                        "power_state": bmc.power_state,
                        "firmware_revision": bmc.firmware_revision,
                    },
                    default=str,
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "ipmi":
        sys.exit(serve_ipmi(sys.argv[2:]))
    json.dump(snapshot(*sys.argv[2:]), sys.stdout, sort_keys=True)
    sys.stdout.write(os.linesep)
