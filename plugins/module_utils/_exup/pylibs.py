# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which distribution package brings a Python library to the interpreter that runs a module (issue 12).

A pure rule, from the OS (``/etc/os-release``'s ID and VERSION_ID) and the interpreter's version:

- SUSE (sles, sle_hpc, opensuse-leap): the system Python 3.6 of SLE 15 takes ``python3-<name>``; every other
  interpreter its own flavour, ``python<major><minor>-<name>`` (``python311-lxml`` from SLE-Module-Python3 on
  SLE 15 SP4 and later, ``python312-``, ``python313-`` as on openSUSE Tumbleweed);
- openSUSE Tumbleweed: always the flavoured name (every interpreter there is a flavour);
- RHEL and its rebuilds (rhel, centos, rocky, almalinux, ol): the platform Python of the release
  (3.6 on 8, 3.9 on 9, 3.12 on 10) takes ``python3-<name>``; the AppStream interpreters ``python3.11-<name>``,
  ``python3.12-<name>`` (RHEL 8's 3.8 and 3.9 stacks are ``python38-`` and ``python39-``);
- Debian, Ubuntu, Fedora and others: ``python3-<name>`` (one system Python 3).
"""

from __future__ import annotations

import typing

#: the distribution's name of each library's project
PROJECTS = {'cryptography': 'cryptography', 'lxml': 'lxml', 'requests': 'requests', 'pyghmi': 'pyghmi'}
SUSE = ('sles', 'sled', 'sle_hpc', 'sles_sap', 'opensuse-leap', 'opensuse')
RHEL = ('rhel', 'centos', 'rocky', 'almalinux', 'ol')
DEBIAN = ('debian', 'ubuntu')
#: the platform Python of each major release, which takes python3-<name>
RHEL_PLATFORM_PYTHON = {'8': (3, 6), '9': (3, 9), '10': (3, 12)}
SUSE_PLATFORM_PYTHON = {'15': (3, 6), '12': (3, 4)}


def os_release(text: str | None) -> tuple[str, str]:
    """(ID, major of VERSION_ID) of an ``/etc/os-release`` text; ('', '') when there is none."""
    values = {}
    for line in (text or '').splitlines():
        if '=' in line:
            key, value = line.split('=', 1)
            values[key.strip()] = value.strip().strip('"\'')
    return values.get('ID', '').lower(), values.get('VERSION_ID', '').split('.')[0]


def library_package(library: str, python: typing.Sequence[int], os_id: str = '', os_major: str = '') -> dict:
    """``{'package': name, 'installer': 'zypper' | 'dnf' | 'apt' | None}`` that brings ``library`` to Python ``python`` (major, minor)."""
    project = PROJECTS.get(library, library)
    version = (int(python[0]), int(python[1]))
    if os_id in SUSE or os_id == 'opensuse-tumbleweed':
        platform = SUSE_PLATFORM_PYTHON.get(os_major) if os_id != 'opensuse-tumbleweed' else None
        prefix = 'python3' if version == platform else 'python%d%d' % version
        return {'package': '%s-%s' % (prefix, project), 'installer': 'zypper'}
    if os_id in RHEL:
        platform = RHEL_PLATFORM_PYTHON.get(os_major)
        if platform is None or version == platform:
            prefix = 'python3'
        elif os_major == '8' and version in ((3, 8), (3, 9)):
            prefix = 'python%d%d' % version
        else:
            prefix = 'python%d.%d' % version
        return {'package': '%s-%s' % (prefix, project), 'installer': 'dnf'}
    if os_id == 'fedora':
        return {'package': 'python3-%s' % project, 'installer': 'dnf'}
    if os_id in DEBIAN:
        return {'package': 'python3-%s' % project, 'installer': 'apt'}
    return {'package': 'python3-%s' % project, 'installer': None}


def missing_library_blockers(
    libraries: typing.Iterable[tuple[str, bool, typing.Any]], python: typing.Sequence[int], executable: str, os_id: str = '', os_major: str = ''
) -> list[dict]:
    """A failed prerequisite ``{code, library, package, msg}`` per library (name, present, import error) that is not present."""
    blockers = []
    for name, present, error in libraries:
        if present:
            continue
        found = library_package(name, python, os_id, os_major)
        how = ' (%s install %s)' % (found['installer'], found['package']) if found['installer'] else ''
        msg = "the Python library %s cannot be imported by %s (Python %d.%d: %s): install the package %s%s or run '%s -m pip install %s'" % (
            name,
            executable,
            python[0],
            python[1],
            error,
            found['package'],
            how,
            executable,
            PROJECTS.get(name, name),
        )
        blockers.append({'code': 'missing_library', 'library': name, 'package': found['package'], 'msg': msg})
    return blockers
