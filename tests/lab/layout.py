# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a lab host looks like: models, OS releases, the files the agent reads (docs/agent.md).

Shared by the lab (tests/lab/lab.py, which writes host roots) and the lab packages
(tests/lab/packages.py, whose install scripts change those files). Paths are relative to a
host root: a real server's path with the leading "/" removed.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

MODEL_A = "Express5800/R120h-1M"
MODEL_B = "Express5800/T120h-2M"
MODEL_UNSUPPORTED = "Express5800/GT110x-9"  # a real-looking model that no lab package targets
VENDOR = "NEC"
VM_VENDOR = "QEMU"
VM_PRODUCT = "Standard PC (Q35 + ICH9, 2009)"
VM_BIOS = "rel-1.16.3-0-ga6ed6b701f0a-prebuilt.qemu.org"

FIRMWARE_MODULES = ("system-bios", "bmc-firmware", "raid-controller", "fc-controller")

#: Where each firmware module's version is on a lab host (the first RAID controller is host0,
#: the FC controller host1, as the agent would find them).
MODULE_PATHS = {
    "system-bios": "sys/class/dmi/id/bios_version",
    "bmc-firmware": "sys/class/ipmi/ipmi0/device/bmc/firmware_revision",
    "raid-controller": "sys/class/scsi_host/host0/version_fw",
    "fc-controller": "sys/class/scsi_host/host1/fw_version",
}
PRODUCT_NAME = "sys/class/dmi/id/product_name"
SYS_VENDOR = "sys/class/dmi/id/sys_vendor"
BOOT_ID = "proc/sys/kernel/random/boot_id"
OS_RELEASE = "etc/os-release"
RAID_DRIVER = "sys/class/scsi_host/host0/proc_name"
FC_HOST = "sys/class/fc_host/host1"
FC_DRIVER = "sys/class/scsi_host/host1/proc_name"
#: Firmware staged by a package that needs a restart, mirroring root-relative paths; the lab's
#: reboot script (tests/lab/reboot.sh) moves it into place, as the hardware would.
STAGED_DIR = "var/lib/exup-lab/staged"
#: Versions of modules without a hardware source (software, SDR...): one file per module id.
INVENTORY_DIR = "var/lib/exup/inventory"
AGENT_DIR = "opt/exup/agent"

INITIAL_VERSIONS = {"system-bios": "1.0", "bmc-firmware": "2.00", "raid-controller": "5.0", "fc-controller": "10.1"}

#: (ID, VERSION_ID) -> the other os-release lines of that release.
OS_RELEASES = {
    ("rhel", "9.4"): {"NAME": "Red Hat Enterprise Linux", "VERSION": "9.4 (Plow)", "ID_LIKE": "fedora", "PRETTY_NAME": "Red Hat Enterprise Linux 9.4 (Plow)"},
    ("sles", "15.5"): {"NAME": "SLES", "VERSION": "15-SP5", "ID_LIKE": "suse", "PRETTY_NAME": "SUSE Linux Enterprise Server 15 SP5"},
    ("centos", "6.10"): {"NAME": "CentOS Linux", "VERSION": "6.10 (Final)", "ID_LIKE": "rhel fedora", "PRETTY_NAME": "CentOS Linux 6.10 (Final)"},
    ("ubuntu", "22.04"): {"NAME": "Ubuntu", "VERSION": "22.04.4 LTS (Jammy Jellyfish)", "ID_LIKE": "debian", "PRETTY_NAME": "Ubuntu 22.04.4 LTS"},
}
RHEL9 = ("rhel", "9.4")
SLES15 = ("sles", "15.5")
CENTOS6 = ("centos", "6.10")


def os_name(os_id: str, version_id: str) -> str:
    """The OS name the agent reports (docs/agent.md): ID + major of VERSION_ID, Ubuntu keeps the minor."""
    if os_id == "ubuntu":
        return os_id + version_id.replace(".", "")
    return os_id + version_id.split(".")[0]


@dataclasses.dataclass(frozen=True)
class HostSpec:
    """One lab host: its inventory groups, what its DMI and os-release say, and its devices."""

    name: str
    groups: tuple
    product_name: str = MODEL_A
    sys_vendor: str = VENDOR
    os_release: tuple = RHEL9
    hardware: bool = True  # a BMC, a RAID and an FC controller (a VM guest has none)
    bios_version: str = INITIAL_VERSIONS["system-bios"]

    @property
    def os(self) -> str:
        return os_name(*self.os_release)

    @property
    def virtual(self) -> bool:
        return self.sys_vendor == VM_VENDOR

    def versions(self) -> dict:
        """The firmware versions this host starts with, by module id."""
        if not self.hardware:
            return {"system-bios": self.bios_version}
        return dict(INITIAL_VERSIONS, **{"system-bios": self.bios_version})

    def as_dict(self) -> dict:
        return {
            "groups": list(self.groups),
            "model": self.product_name,
            "vendor": self.sys_vendor,
            "os": self.os,
            "virtual": self.virtual,
            "versions": self.versions(),
        }


def demo_hosts() -> list[HostSpec]:
    """The demo host set: every kind of server the product must tell apart."""
    return [
        HostSpec("r120h-1", ("managed",)),
        HostSpec("r120h-2", ("managed",)),
        HostSpec("t120h-1", ("managed",), product_name=MODEL_B, os_release=SLES15),
        HostSpec("r120h-3", ("no_agent",)),
        HostSpec("vm-1", ("vm_guests",), product_name=VM_PRODUCT, sys_vendor=VM_VENDOR, hardware=False, bios_version=VM_BIOS),
        HostSpec("r120h-c6", ("unsupported_os",), os_release=CENTOS6),
        HostSpec("gt110x-1", ("unsupported_model",), product_name=MODEL_UNSUPPORTED),
    ]


def uniform_hosts(count: int) -> list[HostSpec]:
    """count hosts of model A on RHEL 9, all in group managed (for benchmarks)."""
    if count < 1:
        raise ValueError("a lab needs at least one host")
    width = max(3, len(str(count)))
    return [HostSpec(f"host{index:0{width}d}", ("managed",)) for index in range(1, count + 1)]


def host_address(index: int) -> str:
    """The loopback address of the index-th host (0-based): 127.0.1.1, 127.0.1.2, ... 127.0.1.254, 127.0.2.1, ..."""
    third, fourth = divmod(index, 254)
    if third + 1 > 255:
        raise ValueError("too many lab hosts for 127.0.1.0 - 127.0.255.254")
    return f"127.0.{third + 1}.{fourth + 1}"


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_os_release(root: Path, os_id: str, version_id: str) -> None:
    extra = OS_RELEASES.get((os_id, version_id), {"NAME": os_id, "PRETTY_NAME": f"{os_id} {version_id}"})
    lines = [f'NAME="{extra["NAME"]}"']
    if "VERSION" in extra:
        lines.append(f'VERSION="{extra["VERSION"]}"')
    lines += [f'ID="{os_id}"']
    if "ID_LIKE" in extra:
        lines.append(f'ID_LIKE="{extra["ID_LIKE"]}"')
    lines += [f'VERSION_ID="{version_id}"', f'PRETTY_NAME="{extra["PRETTY_NAME"]}"']
    _write(root, OS_RELEASE, "\n".join(lines) + "\n")


def make_host_root(root: Path, spec: HostSpec) -> None:
    """Write a fresh host root for spec (root must not exist yet): the files of docs/agent.md "Where versions come from"."""
    root.mkdir(parents=True)
    _write(root, PRODUCT_NAME, spec.product_name + "\n")
    _write(root, SYS_VENDOR, spec.sys_vendor + "\n")
    _write(root, BOOT_ID, str(uuid.uuid4()) + "\n")
    write_os_release(root, *spec.os_release)
    for module, version in spec.versions().items():
        _write(root, MODULE_PATHS[module], version + "\n")
    if spec.hardware:
        _write(root, RAID_DRIVER, "mpt3sas\n")
        (root / FC_HOST).mkdir(parents=True)
        _write(root, FC_DRIVER, "qla2xxx\n")
    (root / STAGED_DIR).mkdir(parents=True)
