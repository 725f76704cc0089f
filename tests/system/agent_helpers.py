# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the agent path system tests (test_agent_*.py): playbooks against the lab, host and repository state.

Nothing is mocked: playbooks run with ansible-playbook over the lab's real ssh (docs/lab.md), the
modules' action plugins run on this controller and the agent on the lab hosts. What a host *is*
lives in its host root, so the tests read the host's files directly (snapshot()) and the
repository's SQLite database (servers(), events()).

Standard library only at import: `python agent_helpers.py HOST_ROOT` prints snapshot(HOST_ROOT) as
JSON (`... servers REPO`: servers(REPO)); the playbooks copy it to a host and run it there (ansible.builtin.script) between steps to
prove "nothing changed".
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HELPERS = Path(__file__).resolve()

#: root-relative files holding a module's current version (docs/agent.md), for the lab's hosts
VERSION_FILES = {
    "system-bios": "sys/class/dmi/id/bios_version",
    "bmc-firmware": "sys/class/ipmi/ipmi0/device/bmc/firmware_revision",
    "raid-controller": "sys/class/scsi_host/host0/version_fw",
    "fc-controller": "sys/class/scsi_host/host1/fw_version",
    "update-agent": "opt/exup/agent/VERSION",
}
STATE_DIR = "var/lib/exup"
STAGED_DIR = "var/lib/exup-lab/staged"
BOOT_ID = "proc/sys/kernel/random/boot_id"
AGENT_DIR = "opt/exup/agent"


def _text(path: Path):
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _files(folder: Path) -> dict:
    if not folder.is_dir():
        return {}
    return {path.relative_to(folder).as_posix(): path.read_text().strip() for path in sorted(folder.rglob("*")) if path.is_file()}


def snapshot(root) -> dict:
    """What a lab host is and holds: versions, state.json, jobs, inbox, staged firmware, boot id, agent folder."""
    root = Path(root)
    versions = {module: _text(root / rel) for module, rel in VERSION_FILES.items()}
    versions.update(_files(root / STATE_DIR / "inventory"))
    state_text = _text(root / STATE_DIR / "state.json")
    jobs = root / STATE_DIR / "jobs"
    inbox = root / STATE_DIR / "inbox"
    return {
        "versions": {module: version for module, version in versions.items() if version is not None},
        "state": json.loads(state_text) if state_text else None,
        "jobs": sorted(path.name for path in jobs.iterdir()) if jobs.is_dir() else [],
        "inbox": sorted(path.name for path in inbox.iterdir()) if inbox.is_dir() else [],
        "staged": _files(root / STAGED_DIR),
        "boot_id": _text(root / BOOT_ID),
        "agent_dir": (root / AGENT_DIR).exists(),
    }


def journal(root, job_id: str) -> dict:
    return json.loads((Path(root) / STATE_DIR / "jobs" / job_id / "journal.json").read_text())


def agent_log(root) -> list:
    return (Path(root) / STATE_DIR / "log" / "agent.log").read_text().splitlines()


def started_order(root, job_id: str) -> list:
    """Package ids of a job in the order the agent started them, from agent.log ('... <id> <version> started')."""
    pattern = re.compile(r"job %s: (?:install|uninstall) (\S+) \S+ started$" % re.escape(job_id))
    return [match.group(1) for match in (pattern.search(line) for line in agent_log(root)) if match]


# --------------------------------------------------------------------------- the repository


def query(repo, sql: str, *args) -> list:
    conn = sqlite3.connect(str(Path(repo) / "repo.db"))
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def servers(repo, manager: str = "local") -> dict:
    """Server name -> {model, os, modules} of the repository's servers table."""
    rows = query(repo, "SELECT name, model, os, modules FROM servers WHERE manager_id = ?", manager)
    return {name: {"model": model, "os": os_name, "modules": json.loads(modules)} for name, model, os_name, modules in rows}


def events(repo, server: str | None = None) -> list:
    """[(code, level, detail)] in order, of one server when given."""
    found = []
    for code, level, detail in query(repo, "SELECT code, level, detail FROM events ORDER BY id"):
        detail = json.loads(detail)
        if server is None or detail.get("server") == server:
            found.append((code, level, detail))
    return found


def package_ids(repo) -> set:
    return {row[0] for row in query(repo, "SELECT package_id FROM packages")}


# --------------------------------------------------------------------------- playbooks

# The agent installed on every managed host from the repository exup_repository, trusting exup_trusted_keys.
AGENT_INSTALL_PLAY = """\
---
- name: Install the agent
  hosts: managed
  gather_facts: false
  tasks:
    - name: Install
      exup.fleet.exup_agent:
        repository: "{{ exup_repository }}"
        trusted_keys: "{{ exup_trusted_keys }}"
        license_accepted: true
        host_root: "{{ exup_host_root }}"
"""

# The same for a fleet fixture's extra vars: the repository repos.default, the key pem.
AGENT_INSTALL_PLAY_FLEET = """\
---
- name: Install the agent on every host
  hosts: managed
  gather_facts: false
  tasks:
    - name: Install the agent from the repository
      exup.fleet.exup_agent:
        repository: "{{ repos.default }}"
        trusted_keys: ["{{ pem }}"]
        license_accepted: true
        host_root: "{{ exup_host_root }}"
"""


def agent_install_play(directory) -> Path:
    """AGENT_INSTALL_PLAY written as ``directory``/agents.yml, for run_playbook with the two variables."""
    play = Path(directory) / "agents.yml"
    play.write_text(AGENT_INSTALL_PLAY)
    return play


def program(name: str) -> str:
    """An ansible command beside the Python running the tests (the repository's .venv)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def playbook_command(path, extra_vars=None, *more) -> list:
    argv = [program("ansible-playbook"), str(path)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    return argv + [str(arg) for arg in more]


def run_playbook(lab, path, extra_vars=None, *more, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(playbook_command(path, extra_vars, *more), env=lab.env(), capture_output=True, text=True, timeout=timeout, check=False)


# The tasks of a scenario play (also the BMC path's): each host runs <host>.yml, then its r_ results are saved.
SCENARIO_TASKS = """\
  tasks:
    - name: Run this host's scenario
      block:
        - name: The scenario
          ansible.builtin.include_tasks: "{{{{ playbook_dir }}}}/{{{{ inventory_hostname }}}}.yml"
      always:
        - name: Write what the scenario registered
          ansible.builtin.copy:
            content: "{{{{ dict(names | zip(q('ansible.builtin.vars', *names))) | to_json }}}}"
            dest: "{{{{ playbook_dir }}}}/result-{{{{ inventory_hostname }}}}.json"
            mode: "0600"
          vars:
            names: "{{{{ q('ansible.builtin.varnames', '^r_') }}}}"
          delegate_to: localhost
"""

# Each host runs its own task file (strategy free: hosts do not wait for each other); whatever
# the tasks register under a name starting with r_ is written to result-<host>.json at the end,
# also when a task failed.
SCENARIO_PLAY = (
    """\
- name: Agent path scenarios, one per host
  hosts: "{hosts}"
  gather_facts: false
  strategy: free
  module_defaults:
    group/exup.fleet.all:
      host_root: "{{{{ exup_host_root }}}}"
      repository: "{{{{ repos.default }}}}"
      trusted_keys: ["{{{{ pem }}}}"]
"""
    + SCENARIO_TASKS
)

#: a task that records snapshot() of the host, taken on the host over ssh, as r_<name>. script: this file is
#: on the controller only (a lab host sees its own root, docs/lab.md), so Ansible copies it over and runs it there.
SNAPSHOT_TASK = """\
- name: Snapshot the host ({name})
  ansible.builtin.script:
    cmd: "{helpers} {{{{ exup_host_root }}}}"
    executable: "{{{{ ansible_python_interpreter }}}}"
  changed_when: false
  register: r_{name}
"""

REBOOT_TASK = """\
- name: Restart the server ({name})
  ansible.builtin.reboot:
    reboot_command: "{{{{ exup_reboot_command }}}}"
    boot_time_command: "{{{{ exup_boot_time_command }}}}"
    reboot_timeout: 120
  register: r_{name}
"""


def snapshot_task(name: str) -> str:
    return SNAPSHOT_TASK.format(name=name, helpers=HELPERS)


def reboot_task(name: str) -> str:
    return REBOOT_TASK.format(name=name)


def recap(output: str) -> dict:
    """PLAY RECAP lines: host -> {"ok": n, "changed": n, "unreachable": n, "failed": n, ...}."""
    found = {}
    for match in re.finditer(r"^(\S+)\s+: ((?:\w+=\d+\s*)+)$", output, re.MULTILINE):
        found[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return found


class Scenarios:
    """A playbook in which each host runs its own task list; results() reads what they registered."""

    def __init__(self, directory, scenarios: dict):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hosts = list(scenarios)
        for host, tasks in scenarios.items():
            (self.directory / f"{host}.yml").write_text("---\n" + tasks)
        self.path = self.directory / "scenarios.yml"
        self.path.write_text("---\n" + SCENARIO_PLAY.format(hosts=",".join(self.hosts)))

    def command(self, extra_vars) -> list:
        return playbook_command(self.path, extra_vars)

    def results(self) -> dict:
        """host -> {register name without r_: result}; snapshots are parsed."""
        found = {}
        for host in self.hosts:
            path = self.directory / f"result-{host}.json"
            registered = json.loads(path.read_text()) if path.exists() else {}
            values = {}
            for name, value in registered.items():
                if name.startswith("r_snap") and isinstance(value, dict) and value.get("stdout"):
                    value = json.loads(value["stdout"])
                values[name[2:]] = value
            found[host] = values
        return found


def _children() -> dict:
    """pid -> its parent's pid, for every process (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def kill_tree(pid: int) -> set[int]:
    """SIGKILL a process and all its descendants at once (stopped first, so none forks in between); returns their pids.

    ansible-playbook's workers start their own sessions (ansible-core 2.21 calls setsid), so killing
    the playbook's process group would leave them polling: the whole tree has to go.
    """
    stopped: set[int] = set()
    while True:
        parents = _children()
        tree, todo = set(), [pid]
        while todo:
            current = todo.pop()
            if current in tree:
                continue
            tree.add(current)
            todo.extend(child for child, parent in parents.items() if parent == current)
        new = tree - stopped
        if not new:
            break
        for member in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGSTOP)
        stopped |= new
    for member in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    return stopped


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return None


if __name__ == "__main__":
    if sys.argv[1] == "servers":  # servers REPO: the repository's servers table
        json.dump(servers(sys.argv[2]), sys.stdout, sort_keys=True)
    else:
        json.dump(snapshot(sys.argv[1]), sys.stdout, sort_keys=True)
    sys.stdout.write(os.linesep)
