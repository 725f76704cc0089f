"""Package verification from many threads at first use, in many fresh processes (issue 8 item 2).

lxml 6.1 / libxml2 2.14 are not safe when several threads compile an XSD at the same moment: with
the schemas compiled per thread at first use, this test saw XMLSchemaParseError ("Document is not
valid XML Schema", "xmlSchemaPValAttrNodeValue, the given type is not a built-in type"), a
"double free or corruption" abort and segfaults in about 5 of every 100 fresh processes (4, 5 and
5 in three runs of 100; a sync can also hang at 100% CPU). xmlsafe now compiles each schema once
and validates under one lock: 0 in 100 since. Only a fresh process can show it, since once
compiled a schema is never compiled again; so each child is a new ``python -c``.

Each child starts 8 threads that wait at a barrier, then all parse both XML files of a package
(where the schemas are compiled), wait again, and verify a whole package each (what sync's
download workers do). A child passes when it exits 0 with every package verified; a crash, an
exception or a child still running after its deadline (a hang) is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo, build_package_from_bytes
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey

PROCESSES = 100
THREADS = 8
AT_ONCE = 4
CHILD_DEADLINE = 30.0
TOTAL_DEADLINE = 120.0

CHILD = r'''
import glob, sys, threading, zipfile
from ansible_collections.exup.fleet.plugins.module_utils._exup import package
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing

folder = sys.argv[1]
keyring = KeyRing.from_pem_list([open(folder + '/vendor.pub').read()])
paths = sorted(glob.glob(folder + '/*.zip'))
barrier = threading.Barrier(len(paths), timeout=20)
verified, errors = [], []


def work(path):
    with zipfile.ZipFile(path) as archive:
        info_xml, hash_xml = archive.read(package.INFO_NAME), archive.read(package.HASH_NAME)
    try:
        barrier.wait()
        package.parse_info_xml(info_xml)
        package.parse_hash_xml(hash_xml)
        barrier.wait()
        verified.append(package.verify_package(path, keyring).info.package_id)
    except Exception as exc:
        errors.append('%s: %s' % (type(exc).__name__, exc))


threads = [threading.Thread(target=work, args=(path,)) for path in paths]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
if errors or len(verified) != len(paths):
    print(errors[0] if errors else 'verified only %d packages' % len(verified))
    sys.exit(3)
'''


def _packages(folder: Path) -> None:
    key = SigningKey.generate()
    (folder / 'vendor.pub').write_bytes(key.public_pem())
    for index in range(THREADS):
        info = PackageInfo(
            package_id='system-bios-1.%02d' % index,
            module_id='system-bios',
            module_name='System BIOS',
            version='1.%02d' % index,
            release_date='2025-01-15',
            models=['R120h-1M'],
            os=['linux'],
            kind='linux',
            auto_update=True,
            reboot_required=True,
            downgrade_supported=False,
            uninstall_supported=False,
            install_command='sh install.sh',
        )
        build_package_from_bytes({'install.sh': b'#!/bin/sh\n', 'image.bin': os.urandom(4096)}, info, key, str(folder / ('%d.zip' % index)))


def _outcome(child: subprocess.Popen[bytes], started: float) -> str | None:
    """None while running; 'ok', or what went wrong (a hang is killed at its deadline)."""
    if child.poll() is None:
        if time.monotonic() - started < CHILD_DEADLINE:
            return None
        child.kill()
        child.wait()
        return 'hang: still running after %.0f s' % CHILD_DEADLINE
    output = child.communicate()[0].decode(errors='replace').strip()  # it has ended: reads the rest, closes the pipe
    if child.returncode == 0:
        return 'ok'
    if child.returncode < 0:
        return 'crash: signal %d %s' % (-child.returncode, output[-200:])
    return 'error: exit %d %s' % (child.returncode, output[-300:])


def _run_children(folder: Path, collections_path: Path) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(collections_path))
    waiting = PROCESSES
    running: list[tuple[subprocess.Popen[bytes], float]] = []
    outcomes: list[str] = []
    deadline = time.monotonic() + TOTAL_DEADLINE
    while (waiting or running) and time.monotonic() < deadline:
        while waiting and len(running) < AT_ONCE:
            child = subprocess.Popen([sys.executable, '-c', CHILD, str(folder)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            running.append((child, time.monotonic()))
            waiting -= 1
        still = []
        for child, started in running:
            outcome = _outcome(child, started)
            if outcome is None:
                still.append((child, started))
            else:
                outcomes.append(outcome)
        running = still
        time.sleep(0.02)
    for child, _started in running:  # over the whole deadline: stop what is left
        child.kill()
        child.wait()
        outcomes.append('hang: over the total deadline')
    return outcomes


def test_verifying_from_many_threads_at_first_use_never_fails(tmp_path: Path, collections_path: Path):
    _packages(tmp_path)
    outcomes = _run_children(tmp_path, collections_path)
    failures = [outcome for outcome in outcomes if outcome != 'ok']
    assert len(outcomes) == PROCESSES
    assert failures == [], '%d of %d processes failed: %s' % (len(failures), PROCESSES, failures[:5])
