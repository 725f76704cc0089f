# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The package that brings a Python library to a managed server's interpreter, by OS and interpreter version (issue 12)."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import pylibs


@pytest.mark.parametrize(
    ('library', 'python', 'os_id', 'major', 'package', 'installer'),
    [
        # SLE 15: the system Python 3.6, and the Python 3.11 stack of SLE-Module-Python3 (SP4 and later)
        ('lxml', (3, 6), 'sles', '15', 'python3-lxml', 'zypper'),
        ('cryptography', (3, 6), 'sles', '15', 'python3-cryptography', 'zypper'),
        ('lxml', (3, 11), 'sles', '15', 'python311-lxml', 'zypper'),
        ('cryptography', (3, 11), 'sles', '15', 'python311-cryptography', 'zypper'),
        ('requests', (3, 12), 'sles', '15', 'python312-requests', 'zypper'),
        ('lxml', (3, 6), 'opensuse-leap', '15', 'python3-lxml', 'zypper'),
        ('lxml', (3, 11), 'opensuse-leap', '15', 'python311-lxml', 'zypper'),
        ('lxml', (3, 13), 'opensuse-tumbleweed', '', 'python313-lxml', 'zypper'),
        # RHEL: the platform Python takes python3-, the AppStream stacks python3.11- / python3.12- (RHEL 8's 3.8/3.9: python38-/python39-)
        ('lxml', (3, 6), 'rhel', '8', 'python3-lxml', 'dnf'),
        ('lxml', (3, 9), 'rhel', '8', 'python39-lxml', 'dnf'),
        ('lxml', (3, 11), 'rhel', '8', 'python3.11-lxml', 'dnf'),
        ('cryptography', (3, 9), 'rhel', '9', 'python3-cryptography', 'dnf'),
        ('cryptography', (3, 11), 'rocky', '9', 'python3.11-cryptography', 'dnf'),
        ('lxml', (3, 12), 'almalinux', '9', 'python3.12-lxml', 'dnf'),
        ('lxml', (3, 12), 'rhel', '10', 'python3-lxml', 'dnf'),
        ('lxml', (3, 13), 'fedora', '41', 'python3-lxml', 'dnf'),
        ('lxml', (3, 11), 'debian', '12', 'python3-lxml', 'apt'),
        ('cryptography', (3, 12), 'ubuntu', '24', 'python3-cryptography', 'apt'),
        ('lxml', (3, 11), '', '', 'python3-lxml', None),
    ],
)
def test_library_package(library, python, os_id, major, package, installer):
    assert pylibs.library_package(library, python, os_id, major) == {'package': package, 'installer': installer}


def test_os_release():
    assert pylibs.os_release('NAME="SLES"\nVERSION_ID="15.5"\nID="sles"\n') == ('sles', '15')
    assert pylibs.os_release("ID=ubuntu\nVERSION_ID='22.04'\n") == ('ubuntu', '22')
    assert pylibs.os_release(None) == ('', '')


def test_blockers_name_the_package_for_the_interpreter():
    libraries = [('lxml', False, ImportError('No module named lxml')), ('cryptography', True, None)]
    (blocker,) = pylibs.missing_library_blockers(libraries, (3, 11), '/usr/bin/python3.11', 'sles', '15')
    assert blocker['code'] == 'missing_library' and blocker['library'] == 'lxml' and blocker['package'] == 'python311-lxml'
    assert 'zypper install python311-lxml' in blocker['msg'] and '/usr/bin/python3.11' in blocker['msg'] and 'Python 3.11' in blocker['msg']
    assert "'/usr/bin/python3.11 -m pip install lxml'" in blocker['msg'] and 'No module named lxml' in blocker['msg']
    assert pylibs.missing_library_blockers(libraries, (3, 6), '/usr/bin/python3', 'sles', '15')[0]['package'] == 'python3-lxml'
    assert pylibs.missing_library_blockers([('lxml', True, None)], (3, 11), 'python') == []
