# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test lab: managed hosts reached over real ssh, each with its own host root (docs/lab.md).

One private sshd (tests/services/sshd.py SshServer) listens on one loopback address per
host (127.0.1.1, 127.0.1.2, ...), so every host has its own ssh connection and ControlPersist
master. Each host is a directory (its host root) holding the files the agent reads
(docs/agent.md); tests/lab/reboot.sh is its "hardware restart". Every session to a host runs
chrooted in that host root, in a mount namespace of its own with a read-only /usr and Python
(tests/lab/login.sh, view.py): a host sees its files and what Ansible sends it, not the
controller's. Ansible sees an inventory with the connection and the exup_* variables of each host.

    python tests/lab/lab.py up [--dir DIR] [--hosts demo|N]
    python tests/lab/lab.py status [--dir DIR] [--json]
    python tests/lab/lab.py down [--dir DIR] [--purge]
    python tests/lab/lab.py repo --path REPO [--dir DIR]

DIR defaults to build/lab. From Python: Lab(directory, hosts).up() ... .down(), or
Lab.load(directory) for a lab another process brought up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":  # run as a script: the collection is importable from build/collections
    sys.path.insert(0, str(REPO_ROOT / "build" / "collections"))

# pylint: disable=wrong-import-position  # after the sys.path entry above
import yaml  # noqa: E402  (PyYAML comes with ansible-core)

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import ADD_WARN_PRESENT, ADDED, Repository  # noqa: E402
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey  # noqa: E402
from ansible_collections.exup.fleet.tests.lab import layout  # noqa: E402
from ansible_collections.exup.fleet.tests.lab.layout import (  # noqa: E402  # the model constants are re-exported
    INITIAL_VERSIONS,
    MODEL_A,
    MODEL_B,
    MODEL_UNSUPPORTED,
    VM_PRODUCT,
    VM_VENDOR,
    HostSpec,
)
from ansible_collections.exup.fleet.tests.lab.packages import build_lab_packages, ensure_vendor_key  # noqa: E402
from ansible_collections.exup.fleet.tests.lab.view import REBOOT, View  # noqa: E402
from ansible_collections.exup.fleet.tests.services.ports import port_accepts  # noqa: E402
from ansible_collections.exup.fleet.tests.services.processes import ServiceError, detached_running, stop_detached  # noqa: E402
from ansible_collections.exup.fleet.tests.services.sshd import SshServer  # noqa: E402

# pylint: enable=wrong-import-position

__all__ = [
    "DEFAULT_DIR",
    "GROUPS",
    "INITIAL_VERSIONS",
    "MODEL_A",
    "MODEL_B",
    "MODEL_UNSUPPORTED",
    "REBOOT_SCRIPT",
    "VM_PRODUCT",
    "VM_VENDOR",
    "HostSpec",
    "Lab",
    "LabError",
    "host_specs",
    "main",
    "python_interpreter",
]

DEFAULT_DIR = REPO_ROOT / "build" / "lab"
REBOOT_SCRIPT = REPO_ROOT / "tests" / "lab" / "reboot.sh"
STATE_FORMAT = 1
GROUPS = ("managed", "no_agent", "vm_guests", "unsupported_os", "unsupported_model")
# What `up` creates in the lab directory (and `down --purge` removes); nothing else there is touched.
CREATED = ("hosts", "sshd", "view", "keys", "packages", "inventory.yml", "ansible.cfg", "lab.json")
#: what the modules get as host_root, the restart and the boot id, all inside a host's own view
HOST_ROOT_INSIDE = "/"
REBOOT_COMMAND = f"/{REBOOT} {HOST_ROOT_INSIDE}"
BOOT_TIME_COMMAND = f"cat /{layout.BOOT_ID}"


class LabError(RuntimeError):
    """The lab cannot do what was asked (the message says why)."""


def python_interpreter() -> str:
    """The Python the lab hosts get (read-only): the repository's .venv (not resolved: the venv's symlink is the venv)."""
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if os.access(venv, os.X_OK) else sys.executable


def host_specs(hosts) -> list[HostSpec]:
    """'demo' (or None) -> the demo host set; a number (or its text) -> that many uniform hosts."""
    if hosts in (None, "demo"):
        return layout.demo_hosts()
    try:
        count = int(hosts)
    except (TypeError, ValueError):
        raise LabError(f"--hosts must be 'demo' or a number, not {hosts!r}") from None
    return layout.uniform_hosts(count)


class Lab:  # pylint: disable=too-many-public-methods  # paths and helpers tests use
    """A lab in one directory: host roots, keys, sshd, inventory.yml, ansible.cfg and lab.json."""

    def __init__(self, directory=DEFAULT_DIR, hosts="demo") -> None:
        self.directory = Path(directory).absolute()
        self.specs = host_specs(hosts)
        self.hosts_arg = "demo" if hosts in (None, "demo") else int(hosts)
        self.sshd: SshServer | None = None
        self.state: dict = {}
        self.view = View(python_interpreter())

    # ------------------------------------------------------------------ paths
    @property
    def state_path(self) -> Path:
        return self.directory / "lab.json"

    @property
    def inventory_path(self) -> Path:
        return self.directory / "inventory.yml"

    @property
    def config_path(self) -> Path:
        """ansible.cfg of the lab: point ANSIBLE_CONFIG at it (env() does)."""
        return self.directory / "ansible.cfg"

    @property
    def vendor_key_path(self) -> Path:
        return self.directory / "keys" / "vendor.key"

    @property
    def vendor_pem_path(self) -> Path:
        """The lab vendor's public key (PEM): what trusted_keys lists."""
        return self.directory / "keys" / "vendor.pem"

    @property
    def view_conf_path(self) -> Path:
        """The read-only binds every host session gets (tests/lab/login.sh reads it)."""
        return self.directory / "view" / "view.conf"

    @property
    def packages_dir(self) -> Path:
        return self.directory / "packages"

    @property
    def collections_path(self) -> Path:
        return REPO_ROOT / "build" / "collections"

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def spec(self, name: str) -> HostSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise LabError(f"the lab has no host {name!r}")

    def host_root(self, name: str) -> Path:
        self.spec(name)
        return self.directory / "hosts" / name

    def address(self, name: str) -> str:
        return layout.host_address(self.names.index(self.spec(name).name))

    def group(self, group: str) -> list[str]:
        """Names of the hosts in an inventory group."""
        return [spec.name for spec in self.specs if group in spec.groups]

    def reboot_command(self, name: str) -> str:
        """The restart as the host runs it (inside its view: its copy of reboot.sh on its root)."""
        self.spec(name)
        return REBOOT_COMMAND

    def boot_time_command(self, name: str) -> str:
        self.spec(name)
        return BOOT_TIME_COMMAND

    def boot_id(self, name: str) -> str:
        return (self.host_root(name) / layout.BOOT_ID).read_text().strip()

    def env(self, base: dict | None = None) -> dict:
        """Environment for ansible and ansible-playbook against this lab."""
        env = dict(os.environ if base is None else base)
        env["ANSIBLE_CONFIG"] = str(self.config_path)
        env["ANSIBLE_COLLECTIONS_PATH"] = str(self.collections_path)
        venv_bin = str(REPO_ROOT / ".venv" / "bin")
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
        return env

    # ------------------------------------------------------------------ life cycle
    def __enter__(self):
        return self.up()

    def __exit__(self, *exc_info):
        self.down()

    @classmethod
    def load(cls, directory=DEFAULT_DIR) -> Lab:
        """The lab described by directory/lab.json (brought up by this or another process)."""
        path = Path(directory).absolute() / "lab.json"
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise LabError(f"no lab in {directory} (no lab.json): run `lab.py up --dir {directory}` first") from None
        lab = cls(directory, state.get("host_set", "demo"))
        lab.state = state
        return lab

    def running(self) -> bool:
        """True when every sshd process of this lab runs."""
        if self.sshd is not None and self.sshd.pids:
            return True
        sshd = self.state.get("sshd") or {}
        pids = sshd.get("pids") or []
        return bool(pids) and all(detached_running(pid, conf) for pid, conf in zip(pids, sshd.get("configs", []), strict=False))

    def up(self) -> Lab:
        """Create the lab from scratch and start sshd; refuses while this directory's lab runs."""
        if any(char.isspace() for char in str(self.directory)) or any(char.isspace() for char in str(REPO_ROOT)):
            raise LabError("the lab directory and the repository path must not contain white space (reboot_command is split on it)")
        if self.state_path.exists():
            previous = Lab.load(self.directory)
            if previous.running():
                raise LabError(f"a lab is already up in {self.directory} (sshd pids {previous.state['sshd']['pids']}): run down first")
        self._remove_created()
        self.directory.mkdir(parents=True, exist_ok=True)
        for spec in self.specs:
            self._make_host(spec)
        ensure_vendor_key(self.vendor_key_path, self.vendor_pem_path)
        self.view.write_conf(self.view_conf_path, self.directory / "view" / "stash")
        addresses = [layout.host_address(index) for index in range(len(self.specs))]
        logins = {address: View.force_command(self.host_root(spec.name), self.view_conf_path) for address, spec in zip(addresses, self.specs, strict=True)}
        sshd = self.sshd = SshServer(addresses, directory=self.directory / "sshd", force_commands=logins)
        sshd.start()
        try:
            self._write_inventory(sshd)
            self._write_config()
            self.state = self._describe(sshd)
            self._save_state()
        except BaseException:
            self.down()
            raise
        return self

    def down(self, purge: bool = False) -> bool:
        """Stop the lab's sshd (with its sessions); purge also removes what up created. True if it was running."""
        was_running = False
        if self.sshd is not None:
            was_running = bool(self.sshd.pids)
            self.sshd.stop()
            self.sshd = None
        elif self.state.get("sshd"):
            for pid, conf in zip(self.state["sshd"]["pids"], self.state["sshd"]["configs"], strict=False):
                was_running = stop_detached(pid, conf) or was_running
        if self.state:
            self.state["sshd"]["running"] = False
            if not purge and self.state_path.exists():
                self._save_state()
        if purge:
            self._remove_created()
        return was_running

    def status(self) -> dict:
        """What lab.json says, plus whether each sshd process runs and each host's address answers."""
        if not self.state:
            self.state = Lab.load(self.directory).state
        sshd = self.state["sshd"]
        processes = {str(pid): detached_running(pid, conf) for pid, conf in zip(sshd["pids"], sshd["configs"], strict=False)}
        answering = {name: port_accepts(sshd["port"], host["address"]) for name, host in self.state["hosts"].items()}
        return dict(self.state, running=all(processes.values()) and all(answering.values()), processes=processes, answering=answering)

    def reset_host(self, name: str) -> None:
        """Put one host back to its initial state (new boot id, initial versions, no agent, nothing staged)."""
        shutil.rmtree(self.host_root(name))  # only plain folders here: the view's mounts live in the sessions' namespaces
        self._make_host(self.spec(name))

    def _make_host(self, spec: HostSpec) -> None:
        root = self.host_root(spec.name)
        layout.make_host_root(root, spec)
        self.view.prepare(root)

    # ------------------------------------------------------------------ packages
    def vendor_key(self) -> SigningKey:
        """The lab vendor's signing key (made by up)."""
        if not self.vendor_key_path.exists():
            raise LabError(f"{self.vendor_key_path} is missing: bring the lab up first")
        return SigningKey.load(str(self.vendor_key_path))

    def build_packages(self, spec=None, out_dir=None) -> dict:
        """Build lab packages (packages.default_spec() by default) signed by the lab vendor; package id -> Path."""
        return build_lab_packages(out_dir or self.packages_dir, self.vendor_key(), spec)

    def make_repository(self, path, spec=None) -> tuple[Path, Path]:
        """A repository at path holding the default lab packages (mode pinned); returns (repository path, trusted key PEM)."""
        packages = self.build_packages(spec)
        repo_path = Path(path).absolute()
        keyring = KeyRing([self.vendor_key().public_key])
        results = Repository(str(repo_path)).add_files([str(p) for p in packages.values()], keyring, mode="pinned")
        refused = [result for result in results if result["result"] not in (ADDED, ADD_WARN_PRESENT)]
        if refused:
            raise LabError(f"the repository refused lab packages: {refused}")
        return repo_path, self.vendor_pem_path

    # ------------------------------------------------------------------ files
    def _remove_created(self) -> None:
        for name in CREATED:
            path = self.directory / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()

    def _host_vars(self, spec: HostSpec, sshd: SshServer) -> dict:
        return {
            "ansible_host": self.address(spec.name),
            "ansible_port": sshd.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(sshd.client_key_path),
            "ansible_python_interpreter": self.view.interpreter,
            "exup_host_root": HOST_ROOT_INSIDE,
            "exup_reboot_command": self.reboot_command(spec.name),
            "exup_boot_time_command": self.boot_time_command(spec.name),
        }

    def _write_inventory(self, sshd: SshServer) -> None:
        children = {}
        for group in list(GROUPS) + sorted({g for spec in self.specs for g in spec.groups} - set(GROUPS)):
            members = [spec for spec in self.specs if group in spec.groups]
            if members:
                children[group] = {"hosts": {spec.name: self._host_vars(spec, sshd) for spec in members}}
        inventory = {
            "all": {
                "vars": {"ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"},
                "children": children,
            }
        }
        header = f"# exup lab inventory, written by tests/lab/lab.py up on {datetime.date.today()}; see docs/lab.md\n"
        self.inventory_path.write_text(header + yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False))

    def _write_config(self) -> None:
        self.config_path.write_text(
            "# exup lab: written by tests/lab/lab.py up; use with ANSIBLE_CONFIG=<this file> (docs/lab.md)\n"
            "[defaults]\n"
            f"inventory = {self.inventory_path}\n"
            f"collections_path = {self.collections_path}\n"
            "forks = 20\n"
            "host_key_checking = False\n"
            "retry_files_enabled = False\n"
            "\n"
            "[ssh_connection]\n"
            "pipelining = True\n"
        )

    def _describe(self, sshd: SshServer) -> dict:
        hosts = {}
        for spec in self.specs:
            hosts[spec.name] = dict(spec.as_dict(), address=self.address(spec.name), root=str(self.host_root(spec.name)))
        return {
            "format": STATE_FORMAT,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "directory": str(self.directory),
            "repo_root": str(REPO_ROOT),
            "host_set": self.hosts_arg,
            "sshd": {
                "pid": sshd.pids[0],
                "pids": sshd.pids,
                "port": sshd.port,
                "addresses": sshd.addresses,
                "configs": [str(path) for path in sshd.config_paths],
                "log": str(sshd.log_path),
                "client_key": str(sshd.client_key_path),
                "running": True,
            },
            "inventory": str(self.inventory_path),
            "ansible_cfg": str(self.config_path),
            "vendor_key": str(self.vendor_key_path),
            "vendor_public_pem": str(self.vendor_pem_path),
            "python_interpreter": self.view.interpreter,
            "python_source": python_interpreter(),
            "view_conf": str(self.view_conf_path),
            "reboot_script": str(REBOOT_SCRIPT),
            "groups": {group: self.group(group) for group in sorted({g for spec in self.specs for g in spec.groups})},
            "hosts": hosts,
        }

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        tmp.replace(self.state_path)


# --------------------------------------------------------------------------- command line


def _print_status(status: dict) -> None:
    sshd = status["sshd"]
    pids = ", ".join(pid + ("" if ok else " (not running)") for pid, ok in status["processes"].items())
    print(f"lab {status['directory']}: {'up' if status['running'] else 'DOWN'} (sshd pids {pids}, port {sshd['port']})")
    print(f"  ANSIBLE_CONFIG={status['ansible_cfg']}")
    for name, host in status["hosts"].items():
        answer = "" if status["answering"][name] else "  (no answer)"
        print(f"  {name:<12} {host['address']:<12} {','.join(host['groups']):<18} {host['model']:<30} {host['os']:<8}{answer}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The exup test lab: managed hosts over real ssh on loopback (docs/lab.md).")
    commands = parser.add_subparsers(dest="command", required=True)
    up_cmd = commands.add_parser("up", help="create the lab and start sshd")
    up_cmd.add_argument("--hosts", default="demo", help="'demo' (default) or a number of uniform model A hosts")
    down_cmd = commands.add_parser("down", help="stop sshd")
    down_cmd.add_argument("--purge", action="store_true", help="also remove what up created")
    status_cmd = commands.add_parser("status", help="is it up; the hosts")
    status_cmd.add_argument("--json", action="store_true", help="print lab.json with the live status")
    repo_cmd = commands.add_parser("repo", help="create a repository holding the lab packages (pinned)")
    repo_cmd.add_argument("--path", required=True, help="repository directory")
    for command in (up_cmd, down_cmd, status_cmd, repo_cmd):
        command.add_argument("--dir", default=str(DEFAULT_DIR), help="lab directory (default: build/lab)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            lab = Lab(args.dir, args.hosts).up()
            _print_status(lab.status())
            print(f"try: ANSIBLE_CONFIG={lab.config_path} ansible all -m ansible.builtin.ping")
            return 0
        lab = Lab.load(args.dir)
        if args.command == "down":
            print(f"lab {lab.directory}: sshd {'stopped' if lab.down(purge=args.purge) else 'was not running'}")
            return 0
        if args.command == "repo":
            repo, pem = lab.make_repository(args.path)
            print(f"repository {repo} (trusted key {pem})")
            return 0
        status = lab.status()
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            _print_status(status)
        return 0 if status["running"] else 1
    except (LabError, ServiceError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
