# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Signed update packages for the lab whose install scripts really change a lab host.

Each package is a real, signed exup package (package.build_package_from_bytes). Its scripts
follow docs/agent.md "How a package runs": POSIX sh, run with /bin/sh -c in the unpacked
package, the host root in $EXUP_ROOT.

- firmware that needs a restart writes its version to
  $EXUP_ROOT/var/lib/exup-lab/staged/<root-relative path of the module's sysfs file>;
  tests/lab/reboot.sh moves it into place, as the hardware does at restart;
- firmware without a restart writes the sysfs file directly;
- software modules write $EXUP_ROOT/var/lib/exup/inventory/<module id>; uninstall.sh removes it.

Scripts refuse to run outside a lab host root (no var/lib/exup-lab/staged) and fail with a clear
message when the device is missing. Command line:

    python tests/lab/packages.py --out DIR [--key KEY] [--set default|table11|extras]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import inspect
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":  # run as a script: the collection is importable from build/collections
    sys.path.insert(0, str(REPO_ROOT / "build" / "collections"))

# pylint: disable=wrong-import-position  # after the sys.path entry above
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import MODULE_KINDS, PackageInfo, build_package_from_bytes  # noqa: E402
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey  # noqa: E402
from ansible_collections.exup.fleet.tests.lab.layout import FIRMWARE_MODULES, MODEL_A, MODEL_B, MODULE_PATHS  # noqa: E402

# pylint: enable=wrong-import-position

AGENT_MODULE = "update-agent"
SOFTWARE_OS = ("rhel8", "rhel9", "sles15", "ubuntu2204")
FIRMWARE_OS = ("any",)
RAID_DRIVERS = ("megaraid_sas", "mpt3sas", "smartpqi", "aacraid")


class LabPackageError(ValueError):
    """A lab package spec that cannot be built."""


def model_slug(model: str) -> str:
    """A short id part for a model: 'Express5800/R120h-1M' -> 'r120h'."""
    name = model.rsplit("/", 1)[-1].split("-")[0]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


@dataclasses.dataclass(frozen=True)
class LabPackage:  # pylint: disable=too-many-instance-attributes  # one field per ExUpInfo flag
    """What to build: one module version for some models, and how its install script behaves.

    os () means the module's default: ('any',) for firmware, SOFTWARE_OS for software.
    sleep makes the install take that many seconds; exit_code (1-255) makes it fail instead of
    installing. no_op makes it report success and change nothing (13.5: "succeeded but unchanged").
    tag goes into the package id ('lab-<tag>-...'); package_id overrides the id.
    """

    module: str
    version: str
    release_date: str
    models: tuple = (MODEL_A,)
    reboot: bool = False
    downgrade: bool = False
    uninstall: bool = False
    auto_update: bool = True
    os: tuple = ()
    sleep: float = 0
    exit_code: int = 0
    tag: str = ""
    package_id: str = ""
    severity: str = "recommended"
    upgrade_from_min: str | None = None  # UpgradeFromMin: the lowest version it upgrades from (stepping stones)
    no_op: bool = False

    @property
    def firmware(self) -> bool:
        return self.module in FIRMWARE_MODULES

    @property
    def os_names(self) -> tuple:
        return tuple(self.os) or (FIRMWARE_OS if self.firmware else SOFTWARE_OS)

    @property
    def id(self) -> str:  # pylint: disable=invalid-name  # the package id
        if self.package_id:
            return self.package_id
        parts = ["lab"] + ([self.tag] if self.tag else []) + [self.module]
        if len(self.models) == 1:
            parts.append(model_slug(self.models[0]))
        parts.append(self.version)
        if self.exit_code:
            parts.append(f"exit{self.exit_code}")
        return "-".join(parts)

    def info(self) -> PackageInfo:
        uninstall = self.uninstall and not self.firmware
        return PackageInfo(
            package_id=self.id,
            module_id=self.module,
            module_name=MODULE_KINDS.get(self.module, self.module),
            version=self.version,
            release_date=self.release_date,
            models=list(self.models),
            os=list(self.os_names),
            kind="linux",
            auto_update=self.auto_update,
            reboot_required=self.reboot,
            downgrade_supported=self.downgrade,
            uninstall_supported=uninstall,
            install_command="./install.sh",
            uninstall_command="./uninstall.sh" if uninstall else "",
            severity=self.severity,
            upgrade_from_min=self.upgrade_from_min,
        )

    def payload(self) -> dict:
        """The package's files (name -> bytes), ExUpInfo.xml and ExUpHash.xml aside."""
        if self.module == AGENT_MODULE:
            raise LabPackageError("the update agent is built by agentpkg.build_agent_package")
        if not 0 <= self.exit_code <= 255:
            raise LabPackageError(f"{self.id}: exit_code must be 0-255")
        # A small "image", different for every package, so every package has its own digest.
        seed = hashlib.sha256(self.id.encode()).digest()
        files = {"install.sh": install_script(self).encode(), f"payload/{self.module}-{self.version}.img": seed * 128}
        if self.uninstall and not self.firmware:
            files["uninstall.sh"] = uninstall_script(self).encode()
        return files


# --------------------------------------------------------------------------- the scripts

_HEADER = """\
#!/bin/sh
# exup lab package {package_id}: {module} {version}{what}.
# Run by the exup agent with /bin/sh -c in the unpacked package (docs/agent.md); EXUP_ROOT is the
# host root (empty on a real server).
set -eu
module='{module}'
version='{version}'
root="${{EXUP_ROOT:-}}"
lab="$root/var/lib/exup-lab"

fail() {{
    echo "$module $version: $*" >&2
    exit 1
}}

[ -d "$lab/staged" ] || fail "$lab/staged is missing: lab packages only run on an exup lab host root"
"""

_SLEEP = """\
echo "$module $version: installing, this takes {seconds} s"
sleep {seconds}
"""

_FAIL = """\
echo "$module $version: the installer failed (a lab package made to fail with exit status {code})" >&2
exit {code}
"""

# Each sets rel, the root-relative path of the file that holds the module's version.
_FIND_FIXED = """\
rel='{rel}'
"""

_FIND_RAID = """\
# The first SCSI host driven by a RAID driver, as the agent finds it.
rel=''
for dir in "$root"/sys/class/scsi_host/host*; do
    [ -f "$dir/proc_name" ] || continue
    case "$(cat "$dir/proc_name")" in
        {drivers})
            for name in version_fw fw_version; do
                if [ -f "$dir/$name" ]; then
                    rel="${{dir#"$root"/}}/$name"
                    break
                fi
            done
            if [ -n "$rel" ]; then
                break
            fi
            ;;
    esac
done
[ -n "$rel" ] || fail "no RAID controller under $root/sys/class/scsi_host: this server has no such device"
"""

_FIND_FC = """\
# The first Fibre Channel host; its firmware version is in the SCSI host of the same name.
rel=''
for dir in "$root"/sys/class/fc_host/host*; do
    [ -d "$dir" ] || continue
    scsi="$root/sys/class/scsi_host/${dir##*/}"
    for name in fw_version fwrev; do
        if [ -f "$scsi/$name" ]; then
            rel="${scsi#"$root"/}/$name"
            break
        fi
    done
    break
done
[ -n "$rel" ] || fail "no Fibre Channel controller under $root/sys/class/fc_host: this server has no such device"
"""

_FIRMWARE_COMMON = """\
target="$root/$rel"
[ -f "$target" ] || fail "$target is missing: this server has no such device"
old="$(cat "$target")"
"""

_FIRMWARE_STAGE = """\
staged="$lab/staged/$rel"
mkdir -p "$(dirname "$staged")"
printf '%s\\n' "$version" >"$staged"
echo "$module: $version staged (current $old); it becomes current when the server restarts"
"""

_FIRMWARE_WRITE = """\
printf '%s\\n' "$version" >"$target"
echo "$module: $old -> $version"
"""

_SOFTWARE_INSTALL = """\
inventory="$root/var/lib/exup/inventory"
mkdir -p "$inventory"
old='none'
if [ -f "$inventory/$module" ]; then
    old="$(cat "$inventory/$module")"
fi
printf '%s\\n' "$version" >"$inventory/$module"
echo "$module: $old -> $version installed"
"""

_SOFTWARE_UNINSTALL = """\
file="$root/var/lib/exup/inventory/$module"
[ -f "$file" ] || fail "$file is missing: $module is not installed"
old="$(cat "$file")"
rm -f "$file"
echo "$module: $old removed"
"""


_NO_OP = """\
echo "$module: $version installed"
exit 0
"""


def _header(spec: LabPackage, what: str) -> str:
    return _HEADER.format(package_id=spec.id, module=spec.module, version=spec.version, what=what)


def install_script(spec: LabPackage) -> str:
    """The install.sh of spec."""
    if spec.exit_code:
        what = f", made to fail with exit status {spec.exit_code}"
    elif spec.no_op:
        what = ", made to report success and change nothing"
    elif spec.firmware:
        what = " (staged: current after a restart)" if spec.reboot else " (current at once)"
    else:
        what = " (software)"
    text = _header(spec, what)
    if spec.exit_code:
        return text + _FAIL.format(code=spec.exit_code)
    slow = _SLEEP.format(seconds=f"{spec.sleep:g}") if spec.sleep else ""
    if spec.no_op:
        return text + slow + _NO_OP
    if not spec.firmware:
        return text + slow + _SOFTWARE_INSTALL
    if spec.module == "raid-controller":
        text += _FIND_RAID.format(drivers="|".join(RAID_DRIVERS))
    elif spec.module == "fc-controller":
        text += _FIND_FC
    else:
        text += _FIND_FIXED.format(rel=MODULE_PATHS[spec.module])
    # The device is checked before the (slow) work starts, as a real installer would.
    return text + _FIRMWARE_COMMON + slow + (_FIRMWARE_STAGE if spec.reboot else _FIRMWARE_WRITE)


def uninstall_script(spec: LabPackage) -> str:
    """The uninstall.sh of a software spec."""
    return _header(spec, " (uninstall)") + _SOFTWARE_UNINSTALL


# --------------------------------------------------------------------------- sets of packages

# Release dates grow with the version within a module.
_DEFAULT_FIRMWARE = [
    # module, version, release date, reboot, downgrade
    ("system-bios", "1.0", "2025-09-08", True, True),
    ("system-bios", "1.1", "2026-02-16", True, True),
    ("system-bios", "1.2", "2026-07-20", True, True),
    ("bmc-firmware", "2.10", "2026-01-26", True, False),
    ("bmc-firmware", "2.20", "2026-06-15", True, False),
    ("fc-controller", "10.2", "2026-04-13", True, False),
]
_DEFAULT_SOFTWARE = [
    # module, version, release date, uninstall, auto update
    ("raid-utility", "3.0.1", "2026-03-09", True, True),
    ("raid-utility", "3.1.0", "2026-08-24", True, True),
    ("sdr", "1.02", "2026-05-11", False, False),
]
AGENT_VERSIONS = (("1.0.0", "2026-06-01"), ("1.1.0", "2026-10-05"))
MODELS = (MODEL_A, MODEL_B)


def default_spec(include_agent: bool = True) -> list[LabPackage]:
    """The default lab packages for MODEL_A and MODEL_B (one package per model, raid-controller for both).

    The update agent packages (1.0.0, 1.1.0) are included when include_agent is true and
    agentpkg can build them (see agent_unavailable()).
    """
    spec = []
    for model in MODELS:
        spec += [
            LabPackage(module, version, date, (model,), reboot=reboot, downgrade=downgrade) for module, version, date, reboot, downgrade in _DEFAULT_FIRMWARE
        ]
        spec += [
            LabPackage(module, version, date, (model,), uninstall=uninstall, auto_update=auto) for module, version, date, uninstall, auto in _DEFAULT_SOFTWARE
        ]
    spec.append(LabPackage("raid-controller", "5.1", "2026-03-23", MODELS, reboot=False))
    if include_agent and agent_unavailable() is None:
        spec += [LabPackage(AGENT_MODULE, version, date, MODELS, os=SOFTWARE_OS, downgrade=True, uninstall=True) for version, date in AGENT_VERSIONS]
    return spec


def table11_spec(model: str = MODEL_A) -> list[LabPackage]:
    """003 Table 11: four packages for one model whose apply order is PKG1, PKG3, PKG2, PKG4.

    No-reboot packages come first, then by release date: PKG1 2009-01-01 (no reboot),
    PKG2 2009-01-02 (reboot), PKG3 2009-01-03 (no reboot), PKG4 2009-01-04 (reboot), each on its
    own module and newer than the lab's versions.
    """
    rows = [
        ("pkg1", "raid-utility", "3.2.0", "2009-01-01", False),
        ("pkg2", "system-bios", "1.3", "2009-01-02", True),
        ("pkg3", "raid-controller", "5.2", "2009-01-03", False),
        ("pkg4", "bmc-firmware", "2.30", "2009-01-04", True),
    ]
    return [
        LabPackage(module, version, date, (model,), reboot=reboot, uninstall=module == "raid-utility", tag=f"t11-{name}")
        for name, module, version, date, reboot in rows
    ]


def slow_package(module: str, version: str, seconds: float, reboot: bool, *, models=(MODEL_A,), release_date: str = "2026-09-14") -> LabPackage:
    """A package whose install takes seconds (then does what a normal one does): for lease and cancel tests."""
    return LabPackage(module, version, release_date, tuple(models), reboot=reboot, sleep=seconds, tag="slow", uninstall=module not in FIRMWARE_MODULES)


def failing_package(module: str, version: str, exit_code: int, *, models=(MODEL_A,), reboot: bool = False, release_date: str = "2026-09-14") -> LabPackage:
    """A package whose install prints an error and exits with exit_code (1-255), changing nothing."""
    if not 1 <= exit_code <= 255:
        raise LabPackageError("a failing package needs an exit code of 1-255")
    return LabPackage(module, version, release_date, tuple(models), reboot=reboot, exit_code=exit_code, tag="fail")


def unchanged_package(module: str, version: str, *, models=(MODEL_A,), reboot: bool = False, release_date: str = "2026-09-14") -> LabPackage:
    """A package whose install says it installed version and exits 0, changing nothing (13.5: succeeded but unchanged)."""
    return LabPackage(module, version, release_date, tuple(models), reboot=reboot, no_op=True, tag="noop")


def extras_spec() -> list[LabPackage]:
    """One slow and one failing package (what the command line's --set extras builds)."""
    return [slow_package("system-bios", "1.1", 30, True), failing_package("raid-controller", "5.1", 3)]


# --------------------------------------------------------------------------- building


def agent_unavailable() -> str | None:
    """None when agentpkg can build the update agent package, else why not."""
    try:
        importlib.import_module("ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.agentpkg")
        importlib.import_module("ansible_collections.exup.fleet.plugins.module_utils._exup.host.agent_runner")
    except ImportError as exc:
        return f"the update agent packages are left out: {exc}"
    return None


def _build_agent(spec: LabPackage, signing_key: SigningKey, out_path: Path) -> None:
    agentpkg = importlib.import_module("ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.agentpkg")
    kwargs = {}
    if "package_id" in inspect.signature(agentpkg.build_agent_package).parameters:
        kwargs["package_id"] = spec.id
    agentpkg.build_agent_package(spec.version, signing_key, str(out_path), list(spec.models), list(spec.os_names), spec.release_date, **kwargs)


def load_key(signing_key) -> SigningKey:
    """A SigningKey, or one loaded from a private key file path."""
    return signing_key if isinstance(signing_key, SigningKey) else SigningKey.load(str(signing_key))


def build_lab_packages(out_dir, signing_key, spec=None) -> dict:
    """Build spec (default: default_spec()) into out_dir as <package id>.zip, signed by signing_key.

    signing_key is a SigningKey or the path of its private key file. Returns package id -> Path,
    in spec order. The update agent is built by agentpkg.build_agent_package.
    """
    key = load_key(signing_key)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = default_spec() if spec is None else list(spec)
    built: dict = {}
    for item in spec:
        if item.id in built:
            raise LabPackageError(f"two lab packages have the id {item.id}")
        path = out / f"{item.id}.zip"
        if item.module == AGENT_MODULE:
            _build_agent(item, key, path)
        else:
            build_package_from_bytes(item.payload(), item.info(), key, str(path))
        built[item.id] = path
    return built


def ensure_vendor_key(private_path: Path, public_path: Path) -> SigningKey:
    """The lab vendor key at private_path, generated (with its public PEM at public_path) when missing."""
    if private_path.exists():
        return SigningKey.load(str(private_path))
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    key.save(str(private_path), str(public_path))
    return key


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build signed exup lab packages.")
    parser.add_argument("--out", required=True, help="directory for the package zips")
    parser.add_argument("--key", help="vendor private key (default: OUT/vendor.key, generated when missing, public PEM in OUT/vendor.pem)")
    parser.add_argument("--set", choices=("default", "table11", "extras"), default="default", help="which packages")
    parser.add_argument("--no-agent", action="store_true", help="leave the update agent packages out of the default set")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    if args.key:
        key = load_key(args.key)
    else:
        key = ensure_vendor_key(out / "vendor.key", out / "vendor.pem")
        print(f"vendor key: {out / 'vendor.key'} (trust {out / 'vendor.pem'})")
    if args.set == "default":
        spec = default_spec(include_agent=not args.no_agent)
        reason = agent_unavailable()
        if reason and not args.no_agent:
            print(f"note: {reason}", file=sys.stderr)
    else:
        spec = table11_spec() if args.set == "table11" else extras_spec()
    for package_id, path in build_lab_packages(out, key, spec).items():
        print(f"{package_id}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
