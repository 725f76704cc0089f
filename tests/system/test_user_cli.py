"""exup-tool from an installed collection, as a user runs it (issue 12 item 3).

The collection tarball is built from this checkout (``ansible-galaxy collection build``: galaxy.yml's
build_ignore applies) and installed into a fresh collections path; every command then runs as
``python -m ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.cli`` with this venv's
Python (requirements.txt installed), PYTHONPATH at that collections path only and the working
directory outside the checkout. What it writes is checked with this checkout's own code: the feed
verifies, the signatures verify, a tampered package is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import parse_catalog
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENTRY = "ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.cli"
PASSPHRASE = "correct horse battery staple"
BUILD_FLAGS = ["--module", "system-bios", "--release-date", "2026-01-01", "--model", "Express5800/R120h-1M", "--os", "any"]


def clean_env(home: Path, **extra: str) -> dict:
    """A user's environment: this venv's bin, nothing of the checkout (no PYTHONPATH, no collections path)."""
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "ANSIBLE_LOCAL_TEMP": str(home / "tmp")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A collections path holding exup.fleet installed from the tarball built of this checkout."""
    top = tmp_path_factory.mktemp("user-cli")
    home = top / "home"
    home.mkdir()
    collections = top / "collections"
    env = clean_env(home, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false")
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(top / "dist")],
        cwd=REPO_ROOT, env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (tarball,) = (top / "dist").glob("exup-fleet-*.tar.gz")
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(collections)],
        cwd=top, env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert (collections / "ansible_collections" / "exup" / "fleet" / "MANIFEST.json").is_file()
    return collections


class User:
    """Runs the installed command line in ``workdir`` (outside the checkout)."""

    def __init__(self, collections: Path, workdir: Path) -> None:
        self.collections = collections
        self.workdir = workdir
        self.env = clean_env(workdir, PYTHONPATH=str(collections))

    def run(self, *argv: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", ENTRY, *argv], cwd=self.workdir, env=env or self.env, input=stdin,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def ok(self, *argv: str, env: dict | None = None, stdin: str | None = None) -> dict:
        proc = self.run(*argv, env=env, stdin=stdin)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def fails(self, code: str, *argv: str, env: dict | None = None) -> str:
        proc = self.run(*argv, env=env)
        assert proc.returncode == 1 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
        assert proc.stderr.startswith(f"exup-tool: error [{code}]: ") and "Traceback" not in proc.stderr, proc.stderr
        return proc.stderr


@pytest.fixture
def user(installed: Path, tmp_path: Path) -> User:
    workdir = tmp_path / "work"
    workdir.mkdir()
    assert not str(workdir).startswith(str(REPO_ROOT))
    return User(installed, workdir)


def test_the_installed_collection_runs_without_the_checkout(user: User, installed: Path):
    fleet = installed / "ansible_collections" / "exup" / "fleet"
    assert not (fleet / "scripts").exists() and not (fleet / "build").exists() and not (fleet / ".venv").exists()
    proc = subprocess.run(
        [sys.executable, "-c", f"import {ENTRY} as m; print(m.__file__)"], cwd=user.workdir, env=user.env,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert proc.stdout.strip() == str(fleet / "plugins/module_utils/_exup/vendor/cli.py")
    help_text = user.run("--help")
    assert help_text.returncode == 0 and "keygen" in help_text.stdout and "wrapper" in help_text.stdout


def test_keygen_build_verify_publish_from_the_installed_collection(user: User):
    work = user.workdir
    env = dict(user.env, EXUP_KEY_PASSPHRASE=PASSPHRASE)  # the passphrase never in argv
    key = user.ok("keygen", "--out", "keys", env=env)
    assert key["encrypted"] is True and PASSPHRASE not in (work / "keys/vendor.key").read_text()
    assert SigningKey.load(str(work / "keys/vendor.key"), passphrase=PASSPHRASE.encode()).key_id == key["key_id"]

    (work / "payload").mkdir()
    (work / "payload/install.sh").write_text("#!/bin/sh\nexit 0\n")
    (work / "payload/bios.bin").write_bytes(os.urandom(4096))
    user.fails(
        "key_passphrase_required",
        "build",
        "--payload",
        "payload",
        "--key",
        "keys/vendor.key",
        "--out",
        "x.zip",
        "--package-id",
        "x",
        "--version",
        "1",
        *BUILD_FLAGS,
    )
    user.ok(
        "build",
        "--payload",
        "payload",
        "--key",
        "keys/vendor.key",
        "--out",
        "pk/bios-1.00.zip",
        "--package-id",
        "bios-1.00",
        "--version",
        "1.00",
        *BUILD_FLAGS,
        env=env,
    )
    info = {
        "package_id": "bios-1.02", "module_id": "system-bios", "module_name": "System BIOS", "version": "1.02", "release_date": "2026-02-01",
        "models": ["Express5800/R120h-1M"], "os": ["any"], "kind": "linux", "auto_update": True, "reboot_required": True,
        "downgrade_supported": True, "uninstall_supported": False, "install_command": "./install.sh", "uninstall_command": "", "severity": "critical",
    }  # fmt: skip
    (work / "info.json").write_text(json.dumps(info))
    (work / "pw").write_text(PASSPHRASE + "\n")
    user.ok("build", "--payload", "payload", "--key", "keys/vendor.key", "--out", "pk/bios-1.02.zip", "--info", "info.json", "--passphrase-file", "pw")

    keyring = KeyRing.from_pem_list([str(work / "keys/vendor.pub")])
    for name in ("bios-1.00", "bios-1.02"):
        shown = user.ok("verify", f"pk/{name}.zip", "--trusted-key", "keys/vendor.pub")
        assert shown["key_id"] == key["key_id"] and shown["info"]["package_id"] == name
        assert verify_package(str(work / f"pk/{name}.zip"), keyring).info.package_id == name  # this checkout's code agrees

    published = user.ok("publish", "--packages", "pk", "--feed", "feed", "--key", "keys/vendor.key", env=env)
    assert published == {"version": 1, "entries": 2, "new": ["bios-1.00", "bios-1.02"]}
    checked = user.ok("verify", "--feed", "feed", "--trusted-key", "keys/vendor.pub")
    assert checked["entries"] == 2 and checked["key_ids"] == [key["key_id"]]
    catalog = parse_catalog((work / "feed/catalog.json").read_bytes(), keyring)
    assert sorted(entry.package_id for entry in catalog.entries) == ["bios-1.00", "bios-1.02"]
    for entry in catalog.entries:
        assert verify_package(str(work / "feed" / entry.url), keyring).info.version == entry.version

    # tampered: one payload byte changed, zip rewritten (a repacked package), and a flipped byte in the feed's copy
    with zipfile.ZipFile(work / "pk/bios-1.00.zip") as old, zipfile.ZipFile(work / "tampered.zip", "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            new.writestr(item, (bytes([data[0] ^ 1]) + data[1:]) if item.filename.endswith("bios.bin") else data)
    user.fails("digest_mismatch", "verify", "tampered.zip", "--trusted-key", "keys/vendor.pub")
    feed_copy = work / "feed/packages/bios-1.02.zip"
    data = feed_copy.read_bytes()
    feed_copy.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    user.fails("feed_package_mismatch", "verify", "--feed", "feed", "--trusted-key", "keys/vendor.pub")
    (work / "other").mkdir()
    user.ok("keygen", "--out", "other")
    user.fails("unknown_key", "verify", "pk/bios-1.00.zip", "--trusted-key", "other/vendor.pub")
    user.fails(
        "key_passphrase_wrong", "publish", "--packages", "pk", "--feed", "feed2", "--key", "keys/vendor.key", env=dict(user.env, EXUP_KEY_PASSPHRASE="wrong")
    )
    assert not (work / "feed2").exists()


def test_synth_and_schema_from_the_installed_collection(user: User):
    work = user.workdir
    user.ok("keygen", "--out", "keys")
    synth = user.ok(
        "synth", "--feed", "feed", "--key", "keys/vendor.key", "--entries", "12", "--avg-size", "2048", "--servers", "3", "--servers-out", "servers.json"
    )
    assert synth["entries"] == 12 and len(json.loads((work / "servers.json").read_text())) == 3
    assert user.ok("verify", "--feed", "feed", "--trusted-key", "keys/vendor.pub")["entries"] == 12

    written = user.ok("schema", "--out", "xsd")["written"]
    assert sorted(Path(path).name for path in written) == ["ExUpHash.xsd", "ExUpInfo.xsd"]
    for name in ("ExUpInfo.xsd", "ExUpHash.xsd"):
        assert (work / "xsd" / name).read_text() == (REPO_ROOT / "docs/schemas" / name).read_text()
    # the synthetic packages' XML is valid against the written schemas
    schemas = {name: etree.XMLSchema(etree.parse(str(work / "xsd" / (name[:-4] + ".xsd")))) for name in ("ExUpInfo.xml", "ExUpHash.xml")}
    package = sorted((work / "feed/packages").glob("*.zip"))[0]
    with zipfile.ZipFile(package) as archive:
        for name, schema in schemas.items():
            assert schema.validate(etree.fromstring(archive.read(name))), schema.error_log


def test_the_wrapper_runs_the_installed_collection(user: User):
    work = user.workdir
    made = user.ok("wrapper", "--out", "bin/exup-tool")
    assert made["collections_path"] == str(user.collections)
    env = clean_env(work)  # no PYTHONPATH: the wrapper sets it
    proc = subprocess.run(
        ["sh", str(work / "bin/exup-tool"), "schema", "--out", "xsd"], cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert (work / "xsd/ExUpInfo.xsd").is_file()
    proc = subprocess.run(
        ["sh", str(work / "bin/exup-tool"), "verify", "nothing.zip"], cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2 and "exup-tool: error [usage]: " in proc.stderr and "Traceback" not in proc.stderr


def test_the_development_wrapper_calls_the_same_entry_point():
    text = (REPO_ROOT / "scripts/exup-tool").read_text()
    assert f"-m {ENTRY} " in text


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Publish, check mode
      exup.fleet.exup_feed: &publish
        path: feed
        packages: pk
        signing_keys: [keys/vendor.key]
        key_passphrase: "{{ lookup('ansible.builtin.env', 'VENDOR_PASSPHRASE') }}"
      check_mode: true
      register: planned
    - name: Publish
      exup.fleet.exup_feed: *publish
      register: published
    - name: Publish again
      exup.fleet.exup_feed: *publish
      register: again
    - name: Verify
      exup.fleet.exup_feed: {path: feed, state: verified, trusted_keys: [keys/vendor.pub]}
      register: verified
    - name: Keep the results
      ansible.builtin.copy:
        dest: results.json
        content: "{{ {'planned': planned, 'published': published, 'again': again, 'verified': verified} | to_json }}"
        mode: "0644"
"""


def test_exup_feed_module_from_the_installed_collection(user: User):
    """ansible-playbook with the installed collection only: check mode, publish, idempotent again, verify."""
    work = user.workdir
    env = dict(user.env, EXUP_KEY_PASSPHRASE=PASSPHRASE)
    user.ok("keygen", "--out", "keys", env=env)
    (work / "payload").mkdir()
    (work / "payload/install.sh").write_text("#!/bin/sh\nexit 0\n")
    user.ok(
        "build",
        "--payload",
        "payload",
        "--key",
        "keys/vendor.key",
        "--out",
        "pk/bios-1.00.zip",
        "--package-id",
        "bios-1.00",
        "--version",
        "1.00",
        *BUILD_FLAGS,
        env=env,
    )
    (work / "site.yml").write_text(PLAYBOOK)
    play_env = clean_env(
        work,
        ANSIBLE_COLLECTIONS_PATH=str(user.collections),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        VENDOR_PASSPHRASE=PASSPHRASE,
    )
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "site.yml"], cwd=work, env=play_env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert PASSPHRASE not in proc.stdout
    results = json.loads((work / "results.json").read_text())
    assert results["planned"]["changed"] and results["planned"]["new"] == ["bios-1.00"]
    assert results["published"]["changed"] and results["published"]["version"] == 1
    assert not results["again"]["changed"] and results["again"]["version"] == 1
    assert not results["verified"]["changed"] and results["verified"]["entries"] == 1
    keyring = KeyRing.from_pem_list([str(work / "keys/vendor.pub")])
    assert [entry.package_id for entry in parse_catalog((work / "feed/catalog.json").read_bytes(), keyring).entries] == ["bios-1.00"]
