# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab itself (tests/lab, docs/lab.md), for real: sshd, ssh, ansible, ansible.builtin.reboot.

Nothing is mocked: ansible connects over ssh to a private sshd on 127.0.1.x, the lab packages
are signed and verified like any package, and their install scripts run with /bin/sh as the
agent runs them.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import safe_extract
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.tests.lab import layout, packages
from ansible_collections.exup.fleet.tests.lab.lab import REBOOT_SCRIPT, REPO_ROOT, Lab, LabError
from ansible_collections.exup.fleet.tests.lab.view import LOGIN_SCRIPT
from ansible_collections.exup.fleet.tests.services.ports import port_accepts
from ansible_collections.exup.fleet.tests.services.processes import detached_running
from ansible_collections.exup.fleet.tests.services.sshd import SshServer

LAB_CLI = REPO_ROOT / "tests" / "lab" / "lab.py"


def program(name: str) -> str:
    """An ansible command from the venv running the tests, else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def run(argv, env=None, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(arg) for arg in argv], env=env, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def playbook(lab: Lab, tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"play-{uuid.uuid4().hex[:8]}.yml"
    path.write_text(text)
    return run([program("ansible-playbook"), path], env=lab.env())


def recap(stdout: str) -> dict:
    """PLAY RECAP lines: host -> {"ok": n, "changed": n, "unreachable": n, "failed": n, ...}."""
    found = {}
    for match in re.finditer(r"^(\S+)\s+: ((?:\w+=\d+\s*)+)$", stdout, re.MULTILINE):
        found[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return found


def unpack_and_run(package: Path, key, host_root: Path, workdir: Path, action: str = "install") -> subprocess.CompletedProcess:
    """What the agent does with a package (docs/agent.md): verify and unpack it, then run its command with /bin/sh -c."""
    verified = safe_extract(str(package), KeyRing([key.public_key]), str(workdir))
    for path in workdir.rglob("*"):
        if path.is_file():
            path.chmod(0o700)  # as the agent does after unpacking
    info = verified.info
    env = dict(
        os.environ,
        EXUP_ROOT=str(host_root),
        EXUP_ACTION=action,
        EXUP_MODULE=info.module_id,
        EXUP_VERSION=info.version,
        EXUP_PACKAGE_ID=info.package_id,
        EXUP_AGENT_DIR=f"{host_root}/{layout.AGENT_DIR}",
    )
    command = info.uninstall_command if action == "uninstall" else info.install_command
    return run(["/bin/sh", "-c", command], env=env, cwd=workdir, timeout=60)


def read(root: Path, rel: str) -> str:
    return (root / rel).read_text().strip()


def staged_files(root: Path) -> dict:
    staged = root / layout.STAGED_DIR
    return {path.relative_to(staged).as_posix(): path.read_text().strip() for path in staged.rglob("*") if path.is_file()}


# --------------------------------------------------------------------------- sshd


def test_ssh_server_is_loopback_only():
    for address in ("10.0.0.1", "0.0.0.0", "::1", "localhost"):
        with pytest.raises(ValueError):
            SshServer([address])


# --------------------------------------------------------------------------- the demo lab


def test_ansible_ping_reaches_every_host_over_ssh(lab):
    result = run([program("ansible"), "all", "-m", "ansible.builtin.ping"], env=lab.env())
    assert result.returncode == 0, result.stdout + result.stderr
    # Default output: "<host> | SUCCESS => {json}" per host.
    parts = re.split(r"^(\S+) \| (\w+) => ", result.stdout, flags=re.MULTILINE)[1:]
    answered = {parts[index]: (parts[index + 1], json.loads(parts[index + 2])) for index in range(0, len(parts), 3)}
    assert set(answered) == set(lab.names), result.stdout
    assert all(status == "SUCCESS" and answer["ping"] == "pong" for status, answer in answered.values()), result.stdout


def test_each_host_is_reached_on_its_own_address(lab, tmp_path):
    # SSH_CONNECTION is set by the sshd that took the connection: "client port server-address server-port".
    result = playbook(
        lab,
        tmp_path,
        """\
- name: Where ssh lands
  hosts: all
  gather_facts: false
  tasks:
    - name: Ask the session
      ansible.builtin.command: printenv SSH_CONNECTION
      register: connection
      changed_when: false
    - name: It is this host's own address and the lab's port, as root
      ansible.builtin.assert:
        that:
          - connection.stdout.split()[2] == ansible_host
          - connection.stdout.split()[3] | int == ansible_port | int
          - ansible_user == 'root'
""",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert {name: counts["ok"] for name, counts in recap(result.stdout).items()} == {name: 2 for name in lab.names}
    addresses = [lab.address(name) for name in lab.names]
    assert len(set(addresses)) == len(addresses) and all(address.startswith("127.0.1.") for address in addresses)


def test_inventory_as_ansible_reads_it(lab):
    result = run([program("ansible-inventory"), "--list"], env=lab.env())
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    groups = {group: sorted(inventory.get(group, {}).get("hosts", [])) for group in ("managed", "no_agent", "vm_guests", "unsupported_os", "unsupported_model")}
    assert groups == {
        "managed": ["r120h-1", "r120h-2", "t120h-1"],
        "no_agent": ["r120h-3"],
        "vm_guests": ["vm-1"],
        "unsupported_os": ["r120h-c6"],
        "unsupported_model": ["gt110x-1"],
    }
    hostvars = inventory["_meta"]["hostvars"]
    for name in lab.names:
        host = hostvars[name]
        root = lab.directory / "hosts" / name
        assert host["ansible_host"] == lab.address(name)
        assert host["ansible_port"] == lab.state["sshd"]["port"]
        assert host["ansible_user"] == "root"
        assert Path(host["ansible_ssh_private_key_file"]).is_file()
        # Paths inside the host's own view (its root is "/" there): the lab's read-only venv, its copy of reboot.sh.
        assert host["ansible_python_interpreter"] == "/opt/exup-lab/python/bin/python"
        assert host["exup_host_root"] == "/"
        assert host["exup_reboot_command"] == "/opt/exup-lab/reboot.sh /"
        assert host["exup_boot_time_command"] == "cat /proc/sys/kernel/random/boot_id"
        assert (root / "opt/exup-lab/reboot.sh").read_bytes() == REBOOT_SCRIPT.read_bytes()
        assert host["ansible_ssh_common_args"] == "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    config = (lab.directory / "ansible.cfg").read_text()
    for line in (
        "pipelining = True",
        "host_key_checking = False",
        "forks = 20",
        f"inventory = {lab.directory}/inventory.yml",
        f"collections_path = {REPO_ROOT}/build/collections",
    ):
        assert line in config.splitlines()
    state = json.loads((lab.directory / "lab.json").read_text())
    assert state["sshd"]["pids"] and all(detached_running(pid, conf) for pid, conf in zip(state["sshd"]["pids"], state["sshd"]["configs"], strict=False))
    assert set(state["hosts"]) == set(lab.names)


EXPECTED_HOSTS = {
    # name: (product_name, sys_vendor, os-release ID, VERSION_ID, has BMC/RAID/FC)
    "r120h-1": (layout.MODEL_A, "NEC", "rhel", "9.4", True),
    "r120h-2": (layout.MODEL_A, "NEC", "rhel", "9.4", True),
    "t120h-1": (layout.MODEL_B, "NEC", "sles", "15.5", True),
    "r120h-3": (layout.MODEL_A, "NEC", "rhel", "9.4", True),
    "vm-1": ("Standard PC (Q35 + ICH9, 2009)", "QEMU", "rhel", "9.4", False),
    "r120h-c6": (layout.MODEL_A, "NEC", "centos", "6.10", True),
    "gt110x-1": ("Express5800/GT110x-9", "NEC", "rhel", "9.4", True),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_HOSTS))
def test_host_root_holds_what_the_agent_reads(lab, name):
    product, vendor, os_id, version_id, hardware = EXPECTED_HOSTS[name]
    root = lab.directory / "hosts" / name
    assert read(root, "sys/class/dmi/id/product_name") == product
    assert read(root, "sys/class/dmi/id/sys_vendor") == vendor
    assert str(uuid.UUID(read(root, "proc/sys/kernel/random/boot_id"))) == read(root, "proc/sys/kernel/random/boot_id")
    os_release = dict(line.split("=", 1) for line in read(root, "etc/os-release").splitlines())
    assert (os_release["ID"], os_release["VERSION_ID"]) == (f'"{os_id}"', f'"{version_id}"')
    assert (root / "var/lib/exup-lab/staged").is_dir() and not any((root / "var/lib/exup-lab/staged").iterdir())
    assert not (root / "opt/exup/agent").exists()
    if hardware:
        assert read(root, "sys/class/dmi/id/bios_version") == "1.0"
        assert read(root, "sys/class/ipmi/ipmi0/device/bmc/firmware_revision") == "2.00"
        assert read(root, "sys/class/scsi_host/host0/proc_name") == "mpt3sas"
        assert read(root, "sys/class/scsi_host/host0/version_fw") == "5.0"
        assert (root / "sys/class/fc_host/host1").is_dir()
        assert read(root, "sys/class/scsi_host/host1/proc_name") == "qla2xxx"
        assert read(root, "sys/class/scsi_host/host1/fw_version") == "10.1"
    else:
        assert not (root / "sys/class/ipmi").exists() and not (root / "sys/class/scsi_host").exists()
    boot_ids = {read(lab.directory / "hosts" / other, "proc/sys/kernel/random/boot_id") for other in lab.names}
    assert len(boot_ids) == len(lab.names)


# --------------------------------------------------------------------------- what a host sees (issue 8 item 7)

#: run by a host's own Python over ssh: which paths exist there; importing the modules' libraries proves they work
PROBE = "import json, os, sys, cryptography, lxml.etree; print(json.dumps({'exists': {p: os.path.exists(p) for p in sys.argv[1:]}, 'prefix': sys.prefix}))"


def on_host(lab: Lab, name: str, command: str, timeout: int = 30) -> subprocess.CompletedProcess:
    """One ssh session to a lab host, as Ansible opens them."""
    if lab.sshd is None:
        raise AssertionError("the lab is not up in this process (lab.up() starts its sshd)")
    return run(lab.sshd.ssh_command(lab.address(name)) + [command], timeout=timeout)


def test_a_host_sees_its_own_root_not_the_controller(lab, tmp_path):
    repo, pem = lab.make_repository(tmp_path / "repo")
    controller = [
        repo / "repo.db",
        REPO_ROOT / "plugins" / "modules" / "exup_host.py",
        lab.collections_path,
        REPO_ROOT,
        lab.vendor_key_path,
        pem,
        lab.sshd.client_key_path,
        lab.directory,
        REPO_ROOT / ".venv",
        REBOOT_SCRIPT,
    ]
    for name in lab.names:
        unseen = [str(path) for path in controller] + [str(lab.host_root(other)) for other in lab.names if other != name]
        own = [
            "/sys/class/dmi/id/product_name",
            "/etc/os-release",
            "/proc/sys/kernel/random/boot_id",
            "/proc/self/status",
            "/opt/exup-lab/reboot.sh",
            "/usr/bin/python3",
        ]
        answer = on_host(lab, name, f"/opt/exup-lab/python/bin/python -c {shlex.quote(PROBE)} {' '.join(unseen + own)}")
        assert answer.returncode == 0, answer.stderr
        seen = json.loads(answer.stdout)
        assert seen["prefix"] == "/opt/exup-lab/python"  # the controller's venv, read-only, at a path of the host's own
        assert [path for path in unseen if seen["exists"][path]] == [], (name, seen)
        assert [path for path in own if not seen["exists"][path]] == [], (name, seen)
        # Its hardware files at their real paths, as the agent reads them with host_root "/".
        files = on_host(lab, name, "cat /sys/class/dmi/id/product_name /proc/sys/kernel/random/boot_id /etc/os-release")
        lines = files.stdout.split("\n")
        assert lines[:2] == [lab.spec(name).product_name, lab.boot_id(name)], files.stdout
        assert f'ID="{lab.spec(name).os_release[0]}"' in lines


def test_a_host_writes_only_into_its_own_root(lab):
    name, other = "r120h-2", "t120h-1"
    marker = f"written-by-lab-host-{uuid.uuid4().hex[:12]}"
    answer = on_host(lab, name, f"echo mine > /tmp/{marker}; touch /usr/lib/{marker}; echo $?")
    try:
        assert answer.stdout.strip() == "1" and "Read-only file system" in answer.stderr, answer.stdout + answer.stderr
        assert (lab.host_root(name) / "tmp" / marker).read_text() == "mine\n"
        assert not (lab.host_root(other) / "tmp" / marker).exists()
        assert not Path("/tmp", marker).exists() and not Path("/usr/lib", marker).exists()
    finally:
        (lab.host_root(name) / "tmp" / marker).unlink(missing_ok=True)
    # The sessions' mounts (the view) lived in their own namespaces: none is left on this machine.
    assert str(lab.directory) not in Path("/proc/self/mountinfo").read_text()


def test_a_broken_view_ends_the_session_before_anything_runs(lab, tmp_path):
    """login.sh fails closed: a view it cannot build never falls back to the machine's own root."""
    conf = tmp_path / "view.conf"
    conf.write_text(f"ro {tmp_path / 'no-such-folder'} usr\n")
    marker = tmp_path / "ran"
    env = dict(os.environ, SSH_ORIGINAL_COMMAND=f"touch {marker}", HOME="/root")
    result = run(["/bin/sh", LOGIN_SCRIPT, lab.host_root("gt110x-1"), conf], env=env, timeout=30)
    assert result.returncode != 0 and "no-such-folder" in result.stderr, result.stdout + result.stderr
    assert not marker.exists() and not (lab.host_root("gt110x-1") / str(marker).lstrip("/")).exists()
    bad = run(["/bin/sh", LOGIN_SCRIPT, tmp_path / "no-such-root", conf], env=env, timeout=30)
    assert bad.returncode == 2 and "usage" in bad.stderr and not marker.exists()


KEYS_PLAY = """\
- name: Trusted keys live on the controller
  hosts: r120h-3
  gather_facts: false
  module_defaults:
    group/exup.fleet.all:
      host_root: "{{ exup_host_root }}"
      repository: "{{ repo }}"
  tasks:
    - name: A key file that is nowhere
      exup.fleet.exup_agent:
        trusted_keys: [/etc/exup/no-such-vendor.pub]
        license_accepted: true
      register: missing
      ignore_errors: true
    - name: The host module takes key material only, never a path
      exup.fleet.exup_host:
        phase: start
        host_root: "{{ exup_host_root }}"
        trusted_keys_pem: ["{{ pem }}"]
      register: host_path
      ignore_errors: true
    - name: Install the agent with a key file next to the playbook (files/vendor.pub, on the controller)
      exup.fleet.exup_agent:
        trusted_keys: [vendor.pub]
        license_accepted: true
      register: agent
    - name: Apply with the key's absolute path on the controller
      exup.fleet.exup_apply:
        trusted_keys: ["{{ pem }}"]
        modules: [raid-controller]
        poll_interval: 1
      register: applied
    - name: Keep the results
      ansible.builtin.copy:
        content: "{{ {'missing': missing, 'host_path': host_path, 'agent': agent, 'applied': applied} | to_json }}"
        dest: "{{ playbook_dir }}/results.json"
        mode: "0600"
      delegate_to: localhost
"""


def test_trusted_keys_are_read_on_the_controller(lab, tmp_path):
    """The host cannot see the key files (as /etc/exup/vendor.pub of the controller is not on every server): it gets PEM texts."""
    reason = packages.agent_unavailable()
    if reason:
        pytest.skip(reason)
    name = "r120h-3"
    repo, pem = lab.make_repository(tmp_path / "repo")
    (tmp_path / "files").mkdir()
    shutil.copy(pem, tmp_path / "files" / "vendor.pub")
    (tmp_path / "play.yml").write_text(KEYS_PLAY)
    try:
        result = run([program("ansible-playbook"), tmp_path / "play.yml", "-e", json.dumps({"repo": str(repo), "pem": str(pem)})], env=lab.env(), timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        found = json.loads((tmp_path / "results.json").read_text())
        missing = found["missing"]
        assert missing["failed"] and missing["error"] == "key_unreadable", missing
        assert missing["msg"] == "cannot read trusted key file /etc/exup/no-such-vendor.pub: no such file on the controller"
        host_path = found["host_path"]
        assert host_path["failed"] and host_path["error"] == "key_invalid" and "must be PEM text" in host_path["msg"], host_path
        assert found["agent"]["changed"] and found["agent"]["status"] == "installed", found["agent"]
        applied = found["applied"]
        assert not applied.get("failed") and applied["changed"], applied
        assert read(lab.host_root(name), layout.MODULE_PATHS["raid-controller"]) == "5.1"
    finally:
        lab.reset_host(name)


# --------------------------------------------------------------------------- packages and reboot


def test_reboot_module_activates_staged_firmware(lab, tmp_path):
    name, bystander = "r120h-1", "r120h-2"
    root = lab.host_root(name)
    key = lab.vendor_key()
    built = lab.build_packages([packages.LabPackage("system-bios", "1.1", "2026-02-16", (layout.MODEL_A,), reboot=True)], out_dir=tmp_path / "packages")
    result = unpack_and_run(built["lab-system-bios-r120h-1.1"], key, root, tmp_path / "work")
    assert result.returncode == 0, result.stderr
    assert staged_files(root) == {"sys/class/dmi/id/bios_version": "1.1"}
    assert read(root, "sys/class/dmi/id/bios_version") == "1.0"  # not before the restart
    before, bystander_before = lab.boot_id(name), lab.boot_id(bystander)

    result = playbook(
        lab,
        tmp_path,
        f"""\
- name: Restart one lab host
  hosts: {name}
  gather_facts: false
  tasks:
    - name: Reboot the way the product does
      ansible.builtin.reboot:
        reboot_command: "{{{{ exup_reboot_command }}}}"
        boot_time_command: "{{{{ exup_boot_time_command }}}}"
        reboot_timeout: 60
      register: reboot
    - name: The module saw the restart
      ansible.builtin.assert:
        that:
          - reboot.rebooted
          - reboot is changed
""",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert recap(result.stdout)[name]["failed"] == 0
    assert read(root, "sys/class/dmi/id/bios_version") == "1.1"
    assert staged_files(root) == {}
    assert (root / layout.STAGED_DIR).is_dir()
    assert lab.boot_id(name) != before and uuid.UUID(lab.boot_id(name))
    assert lab.boot_id(bystander) == bystander_before


def test_install_scripts_change_host_state(lab, tmp_path):
    root = lab.host_root("t120h-1")
    key = lab.vendor_key()
    spec = [
        packages.LabPackage("raid-controller", "5.1", "2026-03-23", (layout.MODEL_A, layout.MODEL_B)),
        packages.LabPackage("fc-controller", "10.2", "2026-04-13", (layout.MODEL_B,), reboot=True),
        packages.LabPackage("bmc-firmware", "2.20", "2026-06-15", (layout.MODEL_B,), reboot=True),
        packages.LabPackage("raid-utility", "3.1.0", "2026-08-24", (layout.MODEL_B,), uninstall=True),
        packages.failing_package("system-bios", "1.2", 3, models=(layout.MODEL_B,)),
    ]
    built = lab.build_packages(spec, out_dir=tmp_path / "packages")
    work = iter(tmp_path / f"work{index}" for index in range(100))

    def install(package_id, host_root=root, action="install"):
        return unpack_and_run(built[package_id], key, host_root, next(work), action)

    # No reboot: the version is current at once. The script finds the RAID controller by its driver.
    assert install("lab-raid-controller-5.1").returncode == 0
    assert read(root, "sys/class/scsi_host/host0/version_fw") == "5.1"
    # Reboot: staged under the module's root-relative path, the live file unchanged.
    assert install("lab-fc-controller-t120h-10.2").returncode == 0
    assert install("lab-bmc-firmware-t120h-2.20").returncode == 0
    assert staged_files(root) == {"sys/class/scsi_host/host1/fw_version": "10.2", "sys/class/ipmi/ipmi0/device/bmc/firmware_revision": "2.20"}
    assert read(root, "sys/class/scsi_host/host1/fw_version") == "10.1"
    # Software: an inventory file, removed by the uninstall script; a second uninstall fails clearly.
    assert install("lab-raid-utility-t120h-3.1.0").returncode == 0
    assert read(root, "var/lib/exup/inventory/raid-utility") == "3.1.0"
    assert install("lab-raid-utility-t120h-3.1.0", action="uninstall").returncode == 0
    assert not (root / "var/lib/exup/inventory/raid-utility").exists()
    again = install("lab-raid-utility-t120h-3.1.0", action="uninstall")
    assert again.returncode == 1 and "raid-utility is not installed" in again.stderr
    # A failing package exits with its status and changes nothing.
    failed = install("lab-fail-system-bios-t120h-1.2-exit3")
    assert failed.returncode == 3 and "exit status 3" in failed.stderr
    assert read(root, "sys/class/dmi/id/bios_version") == "1.0"
    # A missing device fails clearly: a VM guest has no RAID controller.
    vm_root = lab.host_root("vm-1")
    missing = install("lab-raid-controller-5.1", host_root=vm_root)
    assert missing.returncode == 1 and "no RAID controller" in missing.stderr
    assert not (vm_root / "sys/class/scsi_host").exists()
    # Outside a lab host root the scripts refuse and write nothing.
    elsewhere = tmp_path / "not-a-lab-host"
    elsewhere.mkdir()
    refused = install("lab-raid-utility-t120h-3.1.0", host_root=elsewhere)
    assert refused.returncode == 1 and "only run on an exup lab host root" in refused.stderr
    assert not any(elsewhere.iterdir())
    lab.reset_host("t120h-1")
    assert staged_files(root) == {} and read(root, "sys/class/scsi_host/host0/version_fw") == "5.0"


def test_lab_package_sets(lab, tmp_path):
    default = packages.default_spec()
    ids = [item.id for item in default]
    assert len(ids) == len(set(ids))
    assert "lab-system-bios-r120h-1.1" in ids and "lab-raid-controller-5.1" in ids
    by_id = {item.id: item for item in default}
    assert by_id["lab-raid-controller-5.1"].models == (layout.MODEL_A, layout.MODEL_B)
    assert by_id["lab-bmc-firmware-t120h-2.20"].reboot and not by_id["lab-bmc-firmware-t120h-2.20"].downgrade
    assert by_id["lab-system-bios-r120h-1.0"].downgrade
    assert not by_id["lab-sdr-r120h-1.02"].auto_update
    for module in ("system-bios", "bmc-firmware", "raid-utility"):
        dated = [pair[1] for pair in sorted((item.version, item.release_date) for item in default if item.module == module and layout.MODEL_A in item.models)]
        assert dated == sorted(dated)
    reason = packages.agent_unavailable()
    agents = sorted(item.version for item in default if item.module == "update-agent")
    assert agents == ([] if reason else ["1.0.0", "1.1.0"])
    table11 = packages.table11_spec()
    assert [(item.module, item.release_date, item.reboot) for item in table11] == [
        ("raid-utility", "2009-01-01", False),
        ("system-bios", "2009-01-02", True),
        ("raid-controller", "2009-01-03", False),
        ("bmc-firmware", "2009-01-04", True),
    ]

    repo_path, pem = lab.make_repository(tmp_path / "repo")
    assert pem.read_bytes() == lab.vendor_key().public_pem()
    conn = Repository(str(repo_path)).read()
    try:
        stored = conn.packages()
    finally:
        conn.close()
    assert set(stored) == set(ids)
    assert all(row.pinned for row in stored.values())

    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (scripts/setup.sh installs it)")
    spec = [item for item in default if item.module != "update-agent"] + table11 + packages.extras_spec()
    scripts = [REBOOT_SCRIPT, LOGIN_SCRIPT]
    for item in spec:
        for script_name, data in item.payload().items():
            if script_name.endswith(".sh"):
                scripts.append(tmp_path / "scripts" / f"{item.id}-{script_name}")
                scripts[-1].parent.mkdir(exist_ok=True)
                scripts[-1].write_bytes(data)
    result = run(["shellcheck", "-s", "sh", *scripts])
    assert result.returncode == 0, result.stdout


def test_lab_command_line_up_status_down(tmp_path):
    directory = tmp_path / "cli-lab"
    python = sys.executable
    try:
        # 18 hosts: more addresses than one sshd listens on, so two sshd processes.
        up = run([python, LAB_CLI, "up", "--dir", directory, "--hosts", "18"])
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((directory / "lab.json").read_text())
        assert len(state["hosts"]) == 18 and len(state["sshd"]["pids"]) == 2
        assert state["groups"] == {"managed": [f"host{index:03d}" for index in range(1, 19)]}
        status = run([python, LAB_CLI, "status", "--dir", directory, "--json"])
        assert status.returncode == 0, status.stdout + status.stderr
        assert all(json.loads(status.stdout)["answering"].values())
        again = run([python, LAB_CLI, "up", "--dir", directory])
        assert again.returncode == 1 and "already up" in again.stderr
        last = state["hosts"]["host018"]
        ssh = [
            "ssh",
            "-i",
            state["sshd"]["client_key"],
            "-p",
            str(state["sshd"]["port"]),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            f"root@{last['address']}",
            f"cat /sys/class/dmi/id/product_name; test -e {last['root']} || echo controller-path-invisible",
        ]
        answer = run(ssh, timeout=30)
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.split("\n")[:2] == [layout.MODEL_A, "controller-path-invisible"], answer.stdout
    finally:
        down = run([python, LAB_CLI, "down", "--dir", directory])
    assert down.returncode == 0 and "sshd stopped" in down.stdout, down.stdout + down.stderr
    assert not any(detached_running(pid, conf) for pid, conf in zip(state["sshd"]["pids"], state["sshd"]["configs"], strict=False))
    assert run([python, LAB_CLI, "status", "--dir", directory]).returncode == 1
    assert not port_accepts(state["sshd"]["port"], last["address"])
    with pytest.raises(LabError):
        Lab(directory, hosts="many")
