# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The BMC path (003 §1.2.5), for real: exup_info and exup_apply with `via: bmc` run by ansible-playbook against BMC emulators.

Nothing is mocked. Redfish BMCs are the sushy-tools emulator extended with firmware updates
(tests/services/redfish.py, docs/bmc-emulators.md), served by threads of this process over HTTPS
with a test CA; the IPMI BMC is pyghmi's BMC server (tests/services/ipmi_bmc.py) in a process of its
own; SimpleUpdate images come from a real HTTP server (python -m http.server) serving the repository
folder. Every scenario has its own BMC and server name and runs as one host of a single playbook
(strategy free: all at once); two more playbooks run beside it: the agent install offered to a lab
server known only through its BMC (003 §3.8.3, over the lab's ssh) and a -vvv run that must not show
the BMC password. What really happened is read where it is true: the emulators' state (versions,
staged images, tasks, requests, downloads; between playbook steps over their Redfish API), the HTTP
server's log, the fake IPMI BMC's request log, ipmitool, and the repository's SQLite database
(bmc_modules, events).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import MODULE_KINDS, PackageInfo, build_package_from_bytes
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import ADDED, Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.tests.lab.lab import MODEL_A, MODEL_B, REPO_ROOT
from ansible_collections.exup.fleet.tests.services.processes import find_program
from ansible_collections.exup.fleet.tests.services.redfish import BmcSystem, RedfishBmc
from ansible_collections.exup.fleet.tests.services.tls import TlsFiles, make_tls_files
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah, bmc_helpers as bh

MODEL = MODEL_A  # the emulator's default model, and the lab's r120h-3
USER = "admin"
PASSWORD = "bmc-s3cret"
NOLOG_PASSWORD = "Sekr1t-n0log-7f3a"
WRONG_PASSWORD = "Wr0ng-n0log-55e1"
PLAYBOOK_TIMEOUT = 900  # the test machine may be loaded: generous

# BMC packages (kind bmc, any OS) for MODEL: module, version, release date, downgrade supported. Every one needs a reset.
# The BIOS is released before the BMC firmware: the §2.1.7 order (release date) is BIOS first, the reverse of the module ids' order.
BMC_PACKAGES = [
    ("system-bios", "1.00", "2025-10-01", True),
    ("system-bios", "1.10", "2026-02-01", True),
    ("system-bios", "1.20", "2026-03-01", True),
    ("bmc-firmware", "2.05", "2025-12-01", False),
    ("bmc-firmware", "2.10", "2026-01-15", False),
    ("bmc-firmware", "2.20", "2026-05-01", False),
]
OTHER_MODEL_BIOS = ("system-bios", "1.30", "2026-04-01", True)  # for MODEL_B only
# Stepping stones through the BMC (issue 13.8), in a repository of their own: BMC firmware 2.20 upgrades only from 2.10 or
# later (UpgradeFromMin), so a server on 2.00 goes 2.00 -> 2.10 -> 2.20; each step needs the BMC reset (one run each).
STEPPING_PACKAGES = [("2.10", "2026-01-15", None), ("2.20", "2026-05-01", "2.10")]


def package_id(module: str, version: str, model: str = MODEL) -> str:
    return f"bmc-{module}-{'b' if model == MODEL_B else 'a'}-{version}"


def build_bmc_packages(directory: Path, key) -> list:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for model, rows in ((MODEL, BMC_PACKAGES), (MODEL_B, [OTHER_MODEL_BIOS])):
        for module, version, date, downgrade in rows:
            info = PackageInfo(
                package_id=package_id(module, version, model),
                module_id=module,
                module_name=MODULE_KINDS[module],
                version=version,
                release_date=date,
                models=[model],
                os=["any"],
                kind="bmc",
                auto_update=True,
                reboot_required=True,
                downgrade_supported=downgrade,
                uninstall_supported=False,
                install_command="",
            )
            payload = {f"firmware/{module}-{version}.bin": f"{module} {version} for {model}".encode() * 64}
            paths.append(build_package_from_bytes(payload, info, key, str(directory / f"{info.package_id}.zip")))
    return paths


def build_stepping_packages(directory: Path, key) -> list:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for version, date, upgrade_from_min in STEPPING_PACKAGES:
        info = PackageInfo(
            package_id=f"bmc-step-{version}",
            module_id="bmc-firmware",
            module_name=MODULE_KINDS["bmc-firmware"],
            version=version,
            release_date=date,
            models=[MODEL],
            os=["any"],
            kind="bmc",
            auto_update=True,
            reboot_required=True,
            downgrade_supported=False,
            uninstall_supported=False,
            install_command="",
            upgrade_from_min=upgrade_from_min,
        )
        payload = {f"firmware/bmc-firmware-{version}.bin": f"bmc-firmware {version} step".encode() * 64}
        paths.append(build_package_from_bytes(payload, info, key, str(directory / f"{info.package_id}.zip")))
    return paths


class FailOnce:
    """A fail_tasks knob that is true for one task only (the emulator reads it once per task): the next update works."""

    def __init__(self):
        self.left = 1

    def __bool__(self):
        if self.left:
            self.left -= 1
            return True
        return False


# --------------------------------------------------------------------------- the world: repository, BMCs, servers

SCENARIO_BMCS = (
    "multi",
    "push",
    "staged",
    "httppush",
    "simple",
    "rules",
    "refusals",
    "tls",
    "reject",
    "fail",
    "hang",
    "r120h3",
    "nolog",
    "counted",
    "stepping",
)


class World:  # pylint: disable=too-many-instance-attributes  # what the tests look at
    def __init__(self, lab, directory: Path):
        self.lab = lab
        self.directory = directory
        # set by the world fixture
        self.repo: Path | None = None
        self.stepping_repo: Path | None = None
        self.pem: Path | None = None
        self.tls: TlsFiles | None = None
        self.other_tls: TlsFiles | None = None
        self.bmcs: dict[str, RedfishBmc] = {}
        self.ipmi: bh.IpmiProcess | None = None
        self.http_log = directory / "http.log"
        self.image_base_url: str | None = None

    def bmc_vars(self, name: str) -> dict:
        bmc = self.bmcs[name]
        return {"host": bmc.host, "port": bmc.port, "user": bmc.user, "password": bmc.password, "ca": str(bmc.ca_path), "url": bmc.base_url}

    def pool_path(self, module: str, version: str) -> str:
        if self.repo is None:
            raise AssertionError("the world has no repository yet (the world fixture makes it)")
        rows = ah.query(self.repo, "SELECT sha256 FROM packages WHERE package_id = ?", package_id(module, version))
        path = Path(Repository(str(self.repo)).store.pool_path(rows[0][0]))
        return path.relative_to(self.repo).as_posix()


def start_http_server(world: World):
    """python -m http.server serving the repository folder (its log: one line per request)."""
    log = open(world.http_log, "w")  # pylint: disable=consider-using-with  # closed with the process
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(world.repo)], stdout=subprocess.PIPE, stderr=log, text=True
    )
    assert process.stdout is not None  # stdout=PIPE (Popen types its pipes Optional)
    line = process.stdout.readline()
    match = re.search(r"port (\d+)", line)
    assert match, line
    world.image_base_url = f"http://127.0.0.1:{match.group(1)}/"
    return process, log


@pytest.fixture(scope="module")
def world(lab, tmp_path_factory):
    world = World(lab, tmp_path_factory.mktemp("bmc-path"))
    world.repo, world.pem = lab.make_repository(world.directory / "repo")
    keyring = KeyRing([lab.vendor_key().public_key])
    added = Repository(str(world.repo)).add_files(build_bmc_packages(world.directory / "packages", lab.vendor_key()), keyring, mode="pinned")
    assert [row["result"] for row in added] == [ADDED] * (len(BMC_PACKAGES) + 1), added
    world.stepping_repo, _pem = lab.make_repository(world.directory / "stepping-repo")
    added = Repository(str(world.stepping_repo)).add_files(build_stepping_packages(world.directory / "stepping", lab.vendor_key()), keyring, mode="pinned")
    assert [row["result"] for row in added] == [ADDED] * len(STEPPING_PACKAGES), added
    for name in ("tls", "other-tls"):
        (world.directory / name).mkdir()
    world.tls = make_tls_files(world.directory / "tls")
    world.other_tls = make_tls_files(world.directory / "other-tls")  # another CA, same names
    specs = {name: {} for name in SCENARIO_BMCS}
    specs["multi"] = {"systems": [BmcSystem("bmc1-server-1", bmc_version="2.20"), BmcSystem("bmc1-server-2", bios_version="1.10", bmc_version="2.05")]}
    specs["httppush"] = {"multipart": False}
    specs["nolog"] = {"password": NOLOG_PASSWORD}
    http = None
    try:
        for name, kwargs in specs.items():
            world.bmcs[name] = RedfishBmc(tls=world.tls, **kwargs).start()
        world.bmcs["reject"].reject_images = True
        world.bmcs["fail"].fail_tasks = FailOnce()
        world.bmcs["hang"].hang_tasks = True
        http = start_http_server(world)
        with bh.IpmiProcess("2.05", USER, PASSWORD) as ipmi:
            world.ipmi = ipmi
            yield world
    finally:
        if http is not None:
            http[0].terminate()
            http[0].wait(timeout=30)
            http[0].stdout.close()
            http[1].close()
        for bmc in world.bmcs.values():
            bmc.hang_tasks = False
            bmc.stop()


# --------------------------------------------------------------------------- the scenarios (one host and one BMC each)

BMC_PLAY = (
    """\
- name: BMC path scenarios, one per host
  hosts: "{hosts}"
  gather_facts: false
  strategy: free
  module_defaults:
    group/exup.fleet.all:
      via: bmc
      bmc_address: "{{{{ bmc.host }}}}"
      bmc_port: "{{{{ bmc.port }}}}"
      bmc_username: "{{{{ bmc.user }}}}"
      bmc_password: "{{{{ bmc.password }}}}"
      bmc_ca_path: "{{{{ bmc.ca | default(omit) }}}}"
      bmc_protocol: "{{{{ bmc.protocol | default('redfish') }}}}"
      repository: "{{{{ repos.default }}}}"
      trusted_keys: ["{{{{ pem }}}}"]
"""
    + ah.SCENARIO_TASKS
)


class BmcScenarios(ah.Scenarios):
    """ah.Scenarios with the BMC settings of each host (host var bmc) as the modules' defaults."""

    def __init__(self, directory, scenarios: dict):
        super().__init__(directory, scenarios)
        self.path.write_text("---\n" + BMC_PLAY.format(hosts=",".join(self.hosts)))


def _task(module: str, name: str, body: str, ignore_errors: bool, check_mode: bool = False) -> str:
    lines = [f"- name: {module} ({name})", f"  exup.fleet.{module}:" + ("" if body else " {}")]
    lines += ["    " + line for line in body.strip("\n").splitlines()] if body else []
    lines.append(f"  register: r_{name}")
    if check_mode:
        lines.append("  check_mode: true")
    if ignore_errors:
        lines.append("  ignore_errors: true")
    return "\n".join(lines) + "\n"


def apply_task(name: str, body: str = "", ignore_errors: bool = False, check_mode: bool = False) -> str:
    return _task("exup_apply", name, body, ignore_errors, check_mode)


def info_task(name: str, body: str = "", ignore_errors: bool = False) -> str:
    return _task("exup_info", name, body, ignore_errors)


SCENARIOS = {
    # 1. inventory of two systems behind one Redfish service, selected by bmc_system (path or id); an apply on one of them
    "multi": "".join(
        [
            info_task("info_a", "server_name: inv-a\nbmc_system: \"{{ bmc.systems.a }}\""),
            info_task("info_b", "server_name: inv-b\nbmc_system: \"{{ bmc.systems.b }}\""),
            info_task("no_system", "server_name: inv-a", ignore_errors=True),
            apply_task("apply_a", "server_name: inv-a\nbmc_system: \"{{ bmc.systems.a }}\"\nallow_reboot: true"),
            info_task("info_a_after", "server_name: inv-a\nbmc_system: \"{{ bmc.systems.a }}\""),
        ]
    ),
    # 2. push (multipart) with the reset allowed; check mode first, a second apply after
    "push": "".join(
        [
            apply_task("check", check_mode=True),
            apply_task("applied", "allow_reboot: true"),
            apply_task("again", "allow_reboot: true"),
            info_task("info_after"),
        ]
    ),
    # 2. push without the reset: staged, blocked until the power cycle
    "staged": "".join(
        [
            apply_task("staged"),
            bh.snapshot_task("snap_staged", "staged"),
            apply_task("nothing"),
            apply_task("blocked", "versions: {system-bios: '1.10'}\nlatest_only: false", ignore_errors=True),
            bh.snapshot_task("snap_blocked", "staged"),
            apply_task("cycle", "power_cycle: true"),
            apply_task("unblocked", "versions: {system-bios: '1.10'}\nlatest_only: false"),
        ]
    ),
    # 3. HttpPushUri only
    "httppush": apply_task("applied", "modules: [bmc-firmware]\nallow_reboot: true"),
    # 4. SimpleUpdate: the BMC fetches the image from image_base_url
    "simple": "".join(
        [
            apply_task("no_url", "update_method: simple_update\nmodules: [system-bios]", ignore_errors=True),
            apply_task("applied", "update_method: simple_update\nimage_base_url: \"{{ image_base_url }}\"\nmodules: [system-bios]\nallow_reboot: true"),
        ]
    ),
    # 5. latest only, downgrade, previous generation (§2.1.1, §3.5.1 step 6)
    "rules": "".join(
        [
            apply_task("not_newest", "versions: {system-bios: '1.10'}", ignore_errors=True),
            apply_task("older", "versions: {system-bios: '1.10', bmc-firmware: '2.10'}\nlatest_only: false\nallow_reboot: true"),
            apply_task("bmc_down", "versions: {bmc-firmware: '2.05'}\nlatest_only: false", ignore_errors=True),
            apply_task("back", "versions: {system-bios: previous}\nlatest_only: false\nallow_reboot: true"),
            info_task("info_back"),
        ]
    ),
    # 7, 8. what the BMC path refuses before touching the BMC
    "refusals": "".join(
        [
            apply_task("other_modules", "modules: [raid-controller, system-bios]", ignore_errors=True),
            info_task("info"),
            apply_task("other_model_version", "versions: {system-bios: '1.30'}\nlatest_only: false", ignore_errors=True),
            apply_task("linux_kind", "versions: {system-bios: '1.2'}\nlatest_only: false", ignore_errors=True),
            apply_task("wrong_model", f"model: {MODEL_B}", ignore_errors=True),
            apply_task("absent", "state: absent\nmodules: [system-bios]", ignore_errors=True),
        ]
    ),
    # 8. credentials and certificates
    "tls": "".join(
        [
            info_task("wrong_password_info", f"bmc_password: {WRONG_PASSWORD}", ignore_errors=True),
            apply_task("wrong_password", f"bmc_password: {WRONG_PASSWORD}", ignore_errors=True),
            info_task("other_ca", "bmc_ca_path: \"{{ other_ca }}\"", ignore_errors=True),
            apply_task("other_ca_apply", "bmc_ca_path: \"{{ other_ca }}\"", ignore_errors=True),
            info_task("system_store", "bmc_ca_path: null", ignore_errors=True),
            info_task("not_verified", "bmc_ca_path: null\nbmc_validate_certs: false"),
        ]
    ),
    # issue 13.8: stepping stones through the BMC, the same planner as the agent path (rules/plan.py, rules/stepping.py)
    "stepping": "".join(
        [
            apply_task("check", "repository: \"{{ repos.stepping }}\"\nmodules: [bmc-firmware]", check_mode=True),
            apply_task("stone", "repository: \"{{ repos.stepping }}\"\nmodules: [bmc-firmware]\nallow_reboot: true"),
            apply_task("target", "repository: \"{{ repos.stepping }}\"\nmodules: [bmc-firmware]\nallow_reboot: true"),
            apply_task("again", "repository: \"{{ repos.stepping }}\"\nmodules: [bmc-firmware]\nallow_reboot: true"),
        ]
    ),
    # issue 10: what one apply asks of the BMC (nothing else talks to this BMC)
    "counted": apply_task("applied", "modules: [system-bios]"),
    # 8. the BMC refuses the image / the task fails / the task never ends
    "reject": apply_task("rejected", "modules: [system-bios]", ignore_errors=True),
    "fail": "".join(
        [
            apply_task("failed", "modules: [system-bios]", ignore_errors=True),
            bh.snapshot_task("snap_failed", "fail"),
            apply_task("blocked", "modules: [bmc-firmware]", ignore_errors=True),
            apply_task("cycle", "power_cycle: true"),
            apply_task("after", "modules: [system-bios]\nallow_reboot: true"),
        ]
    ),
    "hang": "".join(
        [
            apply_task("hung", "modules: [bmc-firmware]\ntask_timeout: 3", ignore_errors=True),
            info_task("info_after"),
        ]
    ),
    # 6. IPMI: revision and power only (and remote power control)
    "ipmi": "".join(
        [
            info_task("info", f"model: {MODEL}"),
            apply_task("refused", f"model: {MODEL}", ignore_errors=True),
            apply_task("cycle", f"model: {MODEL}\npower_cycle: true"),
        ]
    ),
}

R120H3_PLAY = """\
---
- name: Query r120h-3 through its BMC (003 §3.8.3)
  hosts: r120h-3
  gather_facts: false
  tasks:
    - name: exup_info via bmc
      exup.fleet.exup_info:
        via: bmc
        bmc_address: "{{{{ bmc.host }}}}"
        bmc_port: "{{{{ bmc.port }}}}"
        bmc_username: "{{{{ bmc.user }}}}"
        bmc_password: "{{{{ bmc.password }}}}"
        bmc_ca_path: "{{{{ bmc.ca }}}}"
        repository: "{{{{ exup_repository }}}}"
        trusted_keys: "{{{{ exup_trusted_keys }}}}"
        host_root: "{{{{ exup_host_root }}}}"
      register: bmc_info
    - name: Save it
      ansible.builtin.copy:
        content: "{{{{ bmc_info | to_json }}}}"
        dest: {out}/bmc-info.json
        mode: "0600"
      delegate_to: localhost

- name: Install the agent (the wizard)
  ansible.builtin.import_playbook: {agent_install}

- name: Query r120h-3 through its agent
  hosts: r120h-3
  gather_facts: false
  tasks:
    - name: exup_info
      exup.fleet.exup_info:
        repository: "{{{{ exup_repository }}}}"
        host_root: "{{{{ exup_host_root }}}}"
      register: agent_info
    - name: Save it
      ansible.builtin.copy:
        content: "{{{{ agent_info | to_json }}}}"
        dest: {out}/agent-info.json
        mode: "0600"
      delegate_to: localhost
"""

NOLOG_PLAY = """\
---
- name: The BMC password in a -vvv run
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/exup.fleet.all:
      via: bmc
      bmc_address: "{{ bmc.host }}"
      bmc_port: "{{ bmc.port }}"
      bmc_username: "{{ bmc.user }}"
      bmc_password: "{{ bmc.password }}"
      bmc_ca_path: "{{ bmc.ca }}"
      repository: "{{ repos.default }}"
      trusted_keys: ["{{ pem }}"]
  tasks:
    - name: exup_info
      exup.fleet.exup_info: {}
    - name: exup_apply
      exup.fleet.exup_apply:
        modules: [system-bios]
    - name: exup_apply with a wrong password
      exup.fleet.exup_apply:
        bmc_password: "{{ wrong }}"
      ignore_errors: true
"""


class Batch:
    def __init__(self, results, outputs, codes, seconds):
        self.results = results
        self.outputs = outputs
        self.codes = codes
        self.seconds = seconds

    def of(self, host: str) -> dict:
        return self.results[host]


@pytest.fixture(scope="module")
def batch(world):
    """The scenario playbook, the r120h-3 playbook and the -vvv playbook, all at once; wait for all of them."""
    work = world.directory / "batch"
    scenarios = BmcScenarios(work / "scenarios", SCENARIOS)
    hosts = {}
    for host in SCENARIOS:
        if host == "ipmi":
            bmc = {"host": world.ipmi.host, "port": world.ipmi.port, "user": USER, "password": PASSWORD, "protocol": "ipmi"}
        else:
            bmc = world.bmc_vars(host)
        hosts[host] = {"bmc": bmc}
    multi = world.bmcs["multi"]
    hosts["multi"]["bmc"]["systems"] = {"a": multi.system_path("bmc1-server-1"), "b": multi.system_path("bmc1-server-2").rsplit("/", 1)[1]}
    inventory = work / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": hosts, "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    common = {"repos": {"default": str(world.repo), "stepping": str(world.stepping_repo)}, "pem": str(world.pem)}
    r120h3 = work / "r120h3.yml"
    r120h3.write_text(R120H3_PLAY.format(out=work, agent_install=REPO_ROOT / "playbooks" / "agent_install.yml"))
    nolog = work / "nolog.yml"
    nolog.write_text(NOLOG_PLAY)
    commands = {
        "scenarios": scenarios.command(dict(common, image_base_url=world.image_base_url, other_ca=str(world.other_tls.ca_path))) + ["-i", inventory],
        "r120h3": ah.playbook_command(
            r120h3,
            {
                "bmc": world.bmc_vars("r120h3"),
                "target": "r120h-3",
                "agent_license_accepted": True,
                "exup_repository": str(world.repo),
                "exup_trusted_keys": [str(world.pem)],
            },
        ),
        "nolog": ah.playbook_command(nolog, dict(common, bmc=world.bmc_vars("nolog"), wrong=WRONG_PASSWORD), "-vvv"),
    }
    started = time.monotonic()
    processes = {}
    for name, argv in commands.items():
        log = open(work / f"{name}.log", "w")  # pylint: disable=consider-using-with  # closed below
        processes[name] = (subprocess.Popen([str(arg) for arg in argv], env=world.lab.env(), stdout=log, stderr=subprocess.STDOUT), log)
    codes, seconds = {}, {}
    try:
        deadline = started + PLAYBOOK_TIMEOUT
        while len(codes) < len(processes) and time.monotonic() < deadline:
            for name, (process, _log) in processes.items():
                if name not in codes and process.poll() is not None:
                    codes[name], seconds[name] = process.returncode, round(time.monotonic() - started, 1)
            time.sleep(0.2)
    finally:
        for process, log in processes.values():
            if process.poll() is None:
                ah.kill_tree(process.pid)
                process.wait(timeout=30)
            log.close()
    outputs = {name: (work / f"{name}.log").read_text() for name in commands}
    results = scenarios.results()
    results["r120h3"] = {"bmc_info": ah.read_json(work / "bmc-info.json"), "agent_info": ah.read_json(work / "agent-info.json")}
    return Batch(results, outputs, codes, seconds)


def no_error(result: dict) -> dict:
    assert result and not result.get("failed"), result
    return result


def refused(result: dict, code: str, *words: str) -> dict:
    assert result and result.get("failed") and result.get("error") == code, result
    for word in words:
        assert word in result["msg"], (word, result["msg"])
    return result


def updates(bmc: RedfishBmc) -> list:
    """The update requests the BMC received (push, multipart push, SimpleUpdate) and the resets, in order."""
    kinds = (
        "/UpdateService/update",
        "/UpdateService/update-multipart",
        "/UpdateService.SimpleUpdate",
        "/Actions/ComputerSystem.Reset",
        "/Actions/Manager.Reset",
    )
    return [(method, path.split("?")[0]) for method, path, status in bmc.requests if method == "POST" and path.split("?")[0].endswith(kinds)]


def targets(bmc: RedfishBmc) -> list:
    """(state, firmware inventory id) of each update task, oldest first."""
    found = []
    for task in bmc.tasks():
        named = [message["MessageArgs"][0] for message in task["Messages"] if message["MessageId"].endswith(".TargetDetermined")]
        found.append((task["TaskState"], named[0] if named else None))
    return found


def codes_of(world: World, server: str) -> list:
    return [(code, level) for code, level, detail in bh.events(world.repo, server)]


def test_all_playbooks_ran(world, batch):
    """The scenarios fail only where a scenario expects it (ignore_errors); no server-side error in any emulator."""
    output = batch.outputs["scenarios"]
    recap = ah.recap(output)
    assert set(recap) == set(SCENARIOS), output[-3000:]
    assert all(counts["failed"] == 0 and counts["unreachable"] == 0 for counts in recap.values()), output[-5000:]
    assert batch.codes == {"scenarios": 0, "r120h3": 0, "nolog": 0}, {name: text[-3000:] for name, text in batch.outputs.items()}
    for name, bmc in world.bmcs.items():
        assert bmc.errors == [], (name, bmc.errors)
    assert world.ipmi.state()["errors"] == []
    print(f"BMC path playbooks, seconds to their end: {batch.seconds}")  # shown with -s


# --------------------------------------------------------------------------- 1. Redfish inventory


def test_redfish_inventory_of_the_chosen_system(world, batch):
    """BIOS, BMC and NIC of the system chosen by bmc_system (path or id), statuses; the previous generation marked after an apply."""
    run = batch.of("multi")
    multi = world.bmcs["multi"]
    info_a, info_b = no_error(run["info_a"]), no_error(run["info_b"])
    firmware = {(item["name"], item["module"], item["version"], item["updateable"]) for item in info_a["bmc"]["firmware"]}
    assert firmware == {("BIOS", "system-bios", "1.00", True), ("BMC", "bmc-firmware", "2.20", True), ("NIC", None, "22.31.6", False)}
    assert (info_a["model"], info_a["via"], info_a["bmc"]["power"], info_a["bmc"]["protocol"]) == (MODEL, "bmc", "on", "redfish")
    modules = info_a["modules"]
    assert set(modules) == {"system-bios", "bmc-firmware"}  # the NIC is listed, not managed
    assert (modules["system-bios"]["current"], modules["system-bios"]["status"]) == ("1.00", "update_available")
    assert (modules["bmc-firmware"]["current"], modules["bmc-firmware"]["status"]) == ("2.20", "latest")
    assert [row["version"] for row in modules["system-bios"]["versions"]] == ["1.20", "1.10", "1.00"]  # kind bmc only, newest first
    assert info_a["server_status"] == "update_available"
    # The other system of the same service: its own versions.
    firmware = {(item["name"], item["module"], item["version"]) for item in info_b["bmc"]["firmware"]}
    assert firmware == {("BIOS", "system-bios", "1.10"), ("BMC", "bmc-firmware", "2.05"), ("NIC", None, "22.31.6")}
    assert (info_b["modules"]["system-bios"]["status"], info_b["modules"]["bmc-firmware"]["status"]) == ("update_available", "update_available")
    # Two systems and no bmc_system: which one is not guessed.
    refused(run["no_system"], "argument_invalid", "bmc_system")
    # The apply on system 1 updated system 1's BIOS only, and reset it (its BMC is already the newest).
    applied = no_error(run["apply_a"])
    assert [(row["package_id"], row["status"], row["version_after"]) for row in applied["results"]] == [
        (package_id("system-bios", "1.20"), "succeeded", "1.20")
    ]
    assert applied["rebooted"] is True
    assert multi.versions("bmc1-server-1") == {"BIOS": "1.20", "BMC": "2.20", "NIC": "22.31.6"}
    assert multi.versions("bmc1-server-2") == {"BIOS": "1.10", "BMC": "2.05", "NIC": "22.31.6"}
    assert multi.staged("bmc1-server-1") == {} and multi.staged("bmc1-server-2") == {}
    assert targets(multi) == [("Completed", "bmc1-server-1.BIOS")]
    after = no_error(run["info_a_after"])["modules"]["system-bios"]
    assert (after["current"], after["previous"], after["status"], after["block"]) == ("1.20", "1.00", "latest", None)
    assert [row["label"] for row in after["versions"]] == ["1.20", "1.10", "1.00 [*]"]
    assert bh.bmc_modules(world.repo, "inv-a") == {"system-bios": {"previous": "1.00", "block": None, "staged": None}}
    assert bh.bmc_modules(world.repo, "inv-b") == {}
    queried = [detail for code, level, detail in bh.events(world.repo, "inv-b") if code == "versions_queried"]
    assert queried and queried[0]["via"] == "bmc"


# --------------------------------------------------------------------------- 2. push with and without the reset


def test_push_applies_bios_then_bmc_and_resets_both(world, batch):
    """§2.1.7 order by release date (BIOS first), MultipartHttpPushUri, then the server power cycled and the BMC reset (§2.1.2)."""
    run = batch.of("push")
    bmc = world.bmcs["push"]
    expected = [package_id("system-bios", "1.20"), package_id("bmc-firmware", "2.20")]
    check = no_error(run["check"])
    assert check["changed"] and check["results"] == [] and [row["package_id"] for row in check["plan"]] == expected
    applied = no_error(run["applied"])
    assert [row["package_id"] for row in applied["plan"]] == expected
    assert [(row["module_id"], row["status"], row["version_before"], row["version_after"], row["staged"]) for row in applied["results"]] == [
        ("system-bios", "succeeded", "1.00", "1.20", False),
        ("bmc-firmware", "succeeded", "2.00", "2.20", False),
    ]
    assert all(row["reboot_required"] for row in applied["results"])
    assert (applied["reboot_allowed"], applied["rebooted"], applied["reboot_required"]) == (True, True, False)
    assert applied["diff"] == {"before": {"system-bios": "1.00", "bmc-firmware": "2.00"}, "after": {"system-bios": "1.20", "bmc-firmware": "2.20"}}
    # What the BMC did: two multipart pushes in that order (nothing in check mode), then the resets; the new firmware runs.
    system, manager = bmc.system_path(), bmc.manager_path()
    assert updates(bmc) == [
        ("POST", "/redfish/v1/UpdateService/update-multipart"),
        ("POST", "/redfish/v1/UpdateService/update-multipart"),
        ("POST", f"{system}/Actions/ComputerSystem.Reset"),
        ("POST", f"{manager}/Actions/Manager.Reset"),
    ]
    assert targets(bmc) == [("Completed", "BIOS"), ("Completed", "BMC")]
    assert bmc.versions() == {"BIOS": "1.20", "BMC": "2.20", "NIC": "22.31.6"} and bmc.staged() == {}
    assert bmc.power_state() == "On"
    again = no_error(run["again"])
    assert not again["changed"] and again["plan"] == [] and again["results"] == []
    assert again["skipped_modules"] == {"system-bios": "already at 1.20", "bmc-firmware": "already at 2.20"}
    info = no_error(run["info_after"])
    assert {name: (module["current"], module["previous"], module["status"]) for name, module in info["modules"].items()} == {
        "system-bios": ("1.20", "1.00", "latest"),
        "bmc-firmware": ("2.20", "2.00", "latest"),
    }
    assert info["server_status"] == "latest"
    assert bh.bmc_modules(world.repo, "push") == {
        "system-bios": {"previous": "1.00", "block": None, "staged": None},
        "bmc-firmware": {"previous": "2.00", "block": None, "staged": None},
    }
    found = [(code, detail) for code, level, detail in bh.events(world.repo, "push") if code.startswith("apply_")]
    assert [code for code, detail in found] == ["apply_started", "apply_finished"], found  # neither check mode nor the second apply ran one
    assert found[0][1]["packages"] == expected and found[0][1]["via"] == "bmc"
    assert found[1][1]["via"] == "bmc" and found[1][1]["results"] == {package: "succeeded" for package in expected}
    resets = [detail["reset"] for code, level, detail in bh.events(world.repo, "push") if code == "server_reset"]
    assert resets == [["server", "bmc"]], resets  # the resets the firmware waited for are in the log (003 Table 18)


def test_stepping_stones_through_the_bmc(world, batch):
    """Issue 13.8: BMC firmware 2.00 -> 2.10 -> 2.20 (2.20 upgrades only from 2.10): the plan shows the whole path, each run
    applies one step (each needs the BMC reset), the reset activates it, the next run goes on; then nothing is left."""
    run = batch.of("stepping")
    bmc = world.bmcs["stepping"]
    path = [("2.10", "bmc-step-2.10"), ("2.20", "bmc-step-2.20")]
    check = no_error(run["check"])
    [planned] = check["plan"]
    assert (planned["package_id"], planned["from_version"], planned["to_version"]) == ("bmc-step-2.10", "2.00", "2.10"), planned
    assert [(step["version"], step["package_id"]) for step in planned["path"]] == path
    assert [step["this_run"] for step in planned["path"]] == [True, False] and check["results"] == []
    stone = no_error(run["stone"])
    assert [(row["package_id"], row["status"], row["version_before"], row["version_after"]) for row in stone["results"]] == [
        ("bmc-step-2.10", "succeeded", "2.00", "2.10")
    ]
    assert stone["plan"][0]["path"] == planned["path"] and stone["rebooted"] is True
    target = no_error(run["target"])
    [row] = target["plan"]
    assert (row["package_id"], row["from_version"], row["to_version"]) == ("bmc-step-2.20", "2.10", "2.20") and "path" not in row  # one step left
    assert [(row["package_id"], row["status"], row["version_after"]) for row in target["results"]] == [("bmc-step-2.20", "succeeded", "2.20")]
    again = no_error(run["again"])
    assert again["plan"] == [] and again["skipped_modules"] == {"bmc-firmware": "already at 2.20"}
    # what the BMC did: two pushes, in path order, each followed by its reset; 2.20 runs
    steps = ["reset" if url.endswith(".Reset") else url.rsplit("/", 1)[1] for _method, url in updates(bmc)]
    assert [step for index, step in enumerate(steps) if index == 0 or step != steps[index - 1]] == ["update-multipart", "reset"] * 2, steps
    assert targets(bmc) == [("Completed", "BMC"), ("Completed", "BMC")]
    assert bmc.versions()["BMC"] == "2.20" and bmc.staged() == {}


def test_without_reboot_the_firmware_waits_and_blocks_until_power_cycle(world, batch):
    """allow_reboot false: staged, reboot_required; another apply is refused blocked_until_reboot until exup_apply power_cycle."""
    run = batch.of("staged")
    bmc = world.bmcs["staged"]
    staged = no_error(run["staged"])
    assert [(row["module_id"], row["status"], row["staged"], row["version_after"]) for row in staged["results"]] == [
        ("system-bios", "succeeded", True, "1.00"),
        ("bmc-firmware", "succeeded", True, "2.00"),
    ]
    assert (staged["reboot_required"], staged["reboot_allowed"], staged["rebooted"]) == (True, True, False)
    snap = run["snap_staged"]
    assert snap["firmware"] == {"BIOS": "1.00", "BIOS-Pending": "1.20", "BMC": "2.00", "BMC-Pending": "2.20", "NIC": "22.31.6"}
    assert snap["bmc_modules"] == {
        "system-bios": {"previous": "1.00", "block": "reboot_required", "staged": "1.20"},
        "bmc-firmware": {"previous": "2.00", "block": "reboot_required", "staged": "2.20"},
    }
    nothing = no_error(run["nothing"])
    assert not nothing["changed"] and nothing["plan"] == [] and nothing["reboot_required"] is True
    assert "staged" in nothing["skipped_modules"]["system-bios"] and "staged" in nothing["skipped_modules"]["bmc-firmware"]
    refused(run["blocked"], "blocked_until_reboot", "must restart", "system-bios (reboot required)", "bmc-firmware (reboot required)")
    blocked = run["snap_blocked"]
    assert blocked["firmware"] == snap["firmware"] and blocked["bmc_modules"] == snap["bmc_modules"] and blocked["tasks"] == snap["tasks"]
    assert [code for code, level, detail in blocked["events"]][len(snap["events"]) :] == ["apply_failed"]  # the refusal's error event
    cycle = no_error(run["cycle"])
    assert cycle["changed"] and cycle["rebooted"] is True and cycle["bmc_reset"] is True
    # The power cycle activated what waited for it: the BIOS (server reset) and the BMC firmware (BMC reset); the refused apply now runs.
    unblocked = no_error(run["unblocked"])
    assert [(row["module_id"], row["status"], row["version_before"], row["staged"]) for row in unblocked["results"]] == [
        ("system-bios", "succeeded", "1.20", True)
    ]
    assert updates(bmc) == [("POST", "/redfish/v1/UpdateService/update-multipart")] * 2 + [
        ("POST", f"{bmc.system_path()}/Actions/ComputerSystem.Reset"),
        ("POST", f"{bmc.manager_path()}/Actions/Manager.Reset"),
        ("POST", "/redfish/v1/UpdateService/update-multipart"),
    ]
    assert bmc.versions() == {"BIOS": "1.20", "BMC": "2.20", "NIC": "22.31.6"} and bmc.staged() == {"BIOS": "1.10"}
    assert bh.bmc_modules(world.repo, "staged") == {
        "system-bios": {"previous": "1.20", "block": "reboot_required", "staged": "1.10"},
        "bmc-firmware": {"previous": "2.00", "block": None, "staged": None},
    }


# --------------------------------------------------------------------------- 3, 4. HttpPushUri, SimpleUpdate


def test_push_to_http_push_uri_when_there_is_no_multipart(world, batch):
    bmc = world.bmcs["httppush"]
    applied = no_error(batch.of("httppush")["applied"])
    assert [(row["module_id"], row["status"], row["version_after"]) for row in applied["results"]] == [("bmc-firmware", "succeeded", "2.20")]
    assert updates(bmc) == [("POST", "/redfish/v1/UpdateService/update"), ("POST", f"{bmc.manager_path()}/Actions/Manager.Reset")]
    assert bmc.versions() == {"BIOS": "1.00", "BMC": "2.20", "NIC": "22.31.6"}


def test_one_apply_reads_each_resource_once_on_one_connection(world, batch):
    """Issue 10: pyghmi alone made 21 requests on 21 TLS connections for this apply. Each resource is read once,
    the firmware again after the update (not the NIC, no module of exup's); one kept-alive connection carries all."""
    bmc = world.bmcs["counted"]
    applied = no_error(batch.of("counted")["applied"])
    assert [(row["module_id"], row["status"]) for row in applied["results"]] == [("system-bios", "succeeded")]
    inventory = "/redfish/v1/UpdateService/FirmwareInventory"
    task = [path for _method, path, _status in bmc.requests if "/TaskService/Tasks/" in path]
    assert task, list(bmc.requests)
    assert [(method, path.split("?")[0]) for method, path, _status in bmc.requests] == [
        ("GET", "/redfish/v1/"),  # pyghmi's login (no bmc_system: it looks for the only system twice)
        ("GET", "/redfish/v1/Systems"),
        ("GET", "/redfish/v1/Managers"),
        ("GET", "/redfish/v1/Systems"),
        ("GET", bmc.system_path()),
        ("GET", "/redfish/v1/UpdateService"),  # exup: the firmware inventory
        ("GET", inventory),
        ("GET", f"{inventory}/BIOS"),
        ("GET", f"{inventory}/BMC"),
        ("GET", f"{inventory}/NIC"),
        ("POST", "/redfish/v1/UpdateService/update-multipart"),  # the push, its task (done at once here)
        ("GET", task[0]),
        ("GET", inventory),  # the versions after the update
        ("GET", f"{inventory}/BIOS"),
        ("GET", f"{inventory}/BIOS-Pending"),
        ("GET", f"{inventory}/BMC"),
    ]
    assert bmc.connections == 1


def test_simple_update_makes_the_bmc_download_the_pool_file(world, batch):
    run = batch.of("simple")
    bmc = world.bmcs["simple"]
    refused(run["no_url"], "argument_invalid", "image_base_url")
    applied = no_error(run["applied"])
    assert [(row["module_id"], row["status"], row["version_after"]) for row in applied["results"]] == [("system-bios", "succeeded", "1.20")]
    relative = world.pool_path("system-bios", "1.20")
    size = (world.repo / relative).stat().st_size
    assert bmc.downloads == [{"url": world.image_base_url + relative, "user": None, "status": 200, "bytes": size, "error": None}]
    assert updates(bmc) == [
        ("POST", "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate"),
        ("POST", f"{bmc.system_path()}/Actions/ComputerSystem.Reset"),
    ]
    served = [line for line in world.http_log.read_text().splitlines() if '"GET /' in line]
    assert len(served) == 1 and f'"GET /{relative} HTTP/1.1" 200' in served[0], served
    assert bmc.versions()["BIOS"] == "1.20"


# --------------------------------------------------------------------------- 5. latest only, downgrade, previous generation


def test_latest_only_downgrade_and_previous_generation(world, batch):
    run = batch.of("rules")
    bmc = world.bmcs["rules"]
    refused(run["not_newest"], "latest_only", "system-bios 1.10 is not the newest", "latest_only")
    older = no_error(run["older"])
    assert [(row["module_id"], row["version_before"], row["version_after"]) for row in older["results"]] == [
        ("bmc-firmware", "2.00", "2.10"),
        ("system-bios", "1.00", "1.10"),
    ]  # release date order
    refused(run["bmc_down"], "downgrade_not_supported", "does not support downgrade from 2.10 to 2.05")
    back = no_error(run["back"])
    assert [(row["package_id"], row["from_version"], row["to_version"]) for row in back["plan"]] == [(package_id("system-bios", "1.00"), "1.10", "1.00")]
    assert back["rebooted"] is True
    bios = no_error(run["info_back"])["modules"]["system-bios"]
    assert (bios["current"], bios["previous"]) == ("1.00", "1.10")
    assert [row["label"] for row in bios["versions"]] == ["1.20", "1.10 [*]", "1.00"]
    # Only what was allowed reached the BMC.
    assert targets(bmc) == [("Completed", "BMC"), ("Completed", "BIOS"), ("Completed", "BIOS")]
    assert bmc.versions() == {"BIOS": "1.00", "BMC": "2.10", "NIC": "22.31.6"}
    failed = [detail["error"] for code, level, detail in bh.events(world.repo, "rules") if code == "apply_failed"]
    assert failed == ["latest_only", "downgrade_not_supported"]


# --------------------------------------------------------------------------- 6. IPMI


def test_ipmi_reads_the_revision_and_power_and_refuses_updates(world, batch):
    run = batch.of("ipmi")
    info = no_error(run["info"])
    assert info["bmc"]["protocol"] == "ipmi" and info["bmc"]["power"] == "on"
    assert [(item["module"], item["version"], item["updateable"]) for item in info["bmc"]["firmware"]] == [("bmc-firmware", "2.05", False)]
    assert (info["modules"]["bmc-firmware"]["current"], info["modules"]["bmc-firmware"]["status"]) == ("2.05", "update_available")
    refused(run["refused"], "ipmi_update_unsupported", "IPMI", "Redfish")
    # Remote power control (§2.1.5) is standard IPMI: the power cycle after the refusal is the only power action the BMC saw.
    cycle = no_error(run["cycle"])
    assert cycle["rebooted"] is True and cycle["bmc_reset"] is False
    state = world.ipmi.state()
    assert state["unexpected_requests"] == [] and state["cold_resets"] == 0, state
    assert [(event["action"], event["before"], event["after"]) for event in state["power_history"]] == [("reset", "on", "on")], state
    assert state["firmware_revision"] == "2.05"
    assert bh.bmc_modules(world.repo, "ipmi") == {}
    assert "apply_started" not in [code for code, level in codes_of(world, "ipmi")]
    # ipmitool, another client, reads the same revision.
    ipmitool = find_program("ipmitool", "/usr/bin/ipmitool")
    ran = subprocess.run(
        [ipmitool, "-I", "lanplus", "-H", world.ipmi.host, "-p", str(world.ipmi.port), "-U", USER, "-P", PASSWORD, "-N", "2", "-R", "2", "mc", "info"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert re.search(r"^Firmware Revision\s*:\s*2\.05$", ran.stdout, re.MULTILINE), ran.stdout


# --------------------------------------------------------------------------- 7, 8. refusals before the BMC is touched


def test_modules_other_than_bios_and_bmc_are_not_manageable(world, batch):
    run = batch.of("refusals")
    error = refused(run["other_modules"], "not_manageable_via_bmc", "raid-controller", "use the agent")
    assert error["modules"] == ["raid-controller"]
    info = no_error(run["info"])
    assert info["not_manageable_via_bmc"] == ["fc-controller", "raid-controller"]  # what the repository has for this model (any OS)
    assert set(info["modules"]) == {"system-bios", "bmc-firmware"}


def test_versions_and_models_that_do_not_fit_are_refused(world, batch):
    run = batch.of("refusals")
    bmc = world.bmcs["refusals"]
    refused(run["other_model_version"], "version_not_available", "no system-bios version 1.30", "1.00, 1.10, 1.20")
    refused(run["linux_kind"], "version_not_available", "no system-bios version 1.2 ")  # the agent path's package, not kind bmc
    refused(run["wrong_model"], "wrong_model", MODEL, MODEL_B)
    refused(run["absent"], "bmc_unsupported", "state present")
    assert bmc.tasks() == [] and updates(bmc) == []
    assert bmc.versions() == {"BIOS": "1.00", "BMC": "2.00", "NIC": "22.31.6"} and bmc.staged() == {}
    assert bh.bmc_modules(world.repo, "refusals") == {}
    assert [code for code, level in codes_of(world, "refusals")] == ["apply_failed", "versions_queried"] + ["apply_failed"] * 3 + ["uninstall_failed"]


def test_wrong_password_and_untrusted_certificates(world, batch):
    run = batch.of("tls")
    bmc = world.bmcs["tls"]
    refused(run["wrong_password_info"], "bmc_auth_failed", "user name or password")
    refused(run["wrong_password"], "bmc_auth_failed", "user name or password")
    refused(run["other_ca"], "certificate_untrusted", "not trusted")
    refused(run["other_ca_apply"], "certificate_untrusted", "not trusted")
    refused(run["system_store"], "certificate_untrusted")
    assert no_error(run["not_verified"])["modules"]["system-bios"]["current"] == "1.00"  # the same BMC, the check off: it was the certificate
    assert bmc.tasks() == [] and updates(bmc) == []
    assert bmc.versions() == {"BIOS": "1.00", "BMC": "2.00", "NIC": "22.31.6"}
    assert bh.bmc_modules(world.repo, "tls") == {}
    failures = [(code, detail["error"]) for code, level, detail in bh.events(world.repo, "tls") if level == "error"]
    assert failures == [
        ("versions_query_failed", "bmc_auth_failed"),
        ("apply_failed", "bmc_auth_failed"),
        ("versions_query_failed", "certificate_untrusted"),
        ("apply_failed", "certificate_untrusted"),
        ("versions_query_failed", "certificate_untrusted"),
    ]


# --------------------------------------------------------------------------- 8. the BMC refuses, the task fails, the task never ends


def test_bmc_rejecting_the_image_changes_nothing(world, batch):
    run = batch.of("reject")
    bmc = world.bmcs["reject"]
    error = refused(run["rejected"], "bmc_rejected", package_id("system-bios", "1.20"), "rejected the image (HTTP 400)")
    assert [(row["status"], row["error"], row["version_after"]) for row in error["results"]] == [("failed", "bmc_rejected", "1.00")]
    assert error["rebooted"] is False and error["reboot_allowed"] is False
    assert bmc.tasks() == [] and bmc.versions()["BIOS"] == "1.00" and bmc.staged() == {}
    assert bh.bmc_modules(world.repo, "reject") == {}  # nothing was written: no block
    assert [code for code, level in codes_of(world, "reject")] == ["apply_started", "apply_failed"]


def test_failed_task_blocks_until_power_cycle(world, batch):
    run = batch.of("fail")
    bmc = world.bmcs["fail"]
    failed = refused(run["failed"], "bmc_task_failed", "Exception", "the flash write failed")
    assert [(row["status"], row["error"]) for row in failed["results"]] == [("failed", "bmc_task_failed")]
    snap = run["snap_failed"]
    assert snap["firmware"] == {"BIOS": "1.00", "BMC": "2.00", "NIC": "22.31.6"}
    assert snap["tasks"] == [
        {"state": "Exception", "uri": "/redfish/v1/UpdateService/update-multipart", "messages": ["Update.1.0.TargetDetermined", "Update.1.0.ApplyFailed"]}
    ]
    assert snap["bmc_modules"] == {"system-bios": {"previous": None, "block": "apply_failed", "staged": None}}
    refused(run["blocked"], "blocked_until_reboot", "system-bios (apply failed)")
    cycle = no_error(run["cycle"])
    assert cycle["rebooted"] is True and cycle["bmc_reset"] is False  # no BMC firmware waits: the BMC is left alone
    after = no_error(run["after"])
    assert [(row["module_id"], row["status"], row["version_after"]) for row in after["results"]] == [("system-bios", "succeeded", "1.20")]
    assert len(bmc.tasks()) == 2 and bmc.versions()["BIOS"] == "1.20" and bmc.versions()["BMC"] == "2.00"
    assert [path.rsplit("/", 1)[1] for method, path in updates(bmc)] == [
        "update-multipart",
        "ComputerSystem.Reset",
        "update-multipart",
        "ComputerSystem.Reset",
    ]  # failed push, power cycle, push, reset
    assert bh.bmc_modules(world.repo, "fail") == {"system-bios": {"previous": "1.00", "block": None, "staged": None}}
    expected = ["apply_started", "apply_failed", "apply_failed", "server_reset", "apply_started", "server_reset", "apply_finished"]
    assert [code for code, level in codes_of(world, "fail")] == expected


def test_task_that_never_ends_times_out(world, batch):
    run = batch.of("hang")
    bmc = world.bmcs["hang"]
    hung = refused(run["hung"], "bmc_task_timeout", "did not end within 3 s")
    assert [(row["status"], row["error"]) for row in hung["results"]] == [("failed", "bmc_task_timeout")]
    assert [task["TaskState"] for task in bmc.tasks()] == ["Running"]
    assert bmc.versions()["BMC"] == "2.00" and bmc.staged() == {}
    assert bh.bmc_modules(world.repo, "hang") == {"bmc-firmware": {"previous": None, "block": "apply_failed", "staged": None}}
    info = no_error(run["info_after"])["modules"]["bmc-firmware"]
    assert (info["block"], info["status"]) == ("apply_failed", "apply_failed")
    assert [code for code, level in codes_of(world, "hang")] == ["apply_started", "apply_failed", "versions_queried"]


# --------------------------------------------------------------------------- 9. the agent offered to a server known through its BMC (§3.8.3)


def test_agent_installable_on_a_server_managed_through_its_bmc(world, batch):
    run = batch.results["r120h3"]
    info = no_error(run["bmc_info"])
    assert info["via"] == "bmc" and info["model"] == MODEL
    assert info["agent_installable"] is True and info["agent_install_blockers"] == [] and info["agent"]["installed"] is False
    assert info["facts"]["os"] == "rhel9"
    output = batch.outputs["r120h3"]
    assert ah.recap(output)["r120h-3"]["failed"] == 0, output[-3000:]
    agent = no_error(run["agent_info"])
    assert agent["agent"]["installed"] is True and agent["server_status"] != "agent_not_installed"
    assert agent["modules"]["system-bios"]["current"] == "1.0"  # the host's own view, through the agent
    assert ah.snapshot(world.lab.host_root("r120h-3"))["agent_dir"]


# --------------------------------------------------------------------------- 10. no_log


def test_the_bmc_password_is_never_shown(world, batch):
    output = batch.outputs["nolog"]
    assert "exup_apply with a wrong password" in output and "bmc_auth_failed" in output  # the run is really there, at -vvv
    assert "ESTABLISH LOCAL CONNECTION" in output  # -vvv
    assert NOLOG_PASSWORD not in output and WRONG_PASSWORD not in output
    assert world.bmcs["nolog"].versions()["BIOS"] == "1.00" and world.bmcs["nolog"].staged() == {"BIOS": "1.20"}  # it did run with it
