# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""UpgradeFromMin in ExUpInfo.xml: optional, rendered and read back, hostile values refused with a stable code."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import PackageError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo, render_info_xml, verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor import cli

SEVERITY = '<Severity>recommended</Severity>'


def test_old_package_has_none_and_renders_no_element(build_pkg, keyring, info_xml_text):
    assert 'UpgradeFromMin' not in info_xml_text
    assert verify_package(build_pkg(), keyring).info.upgrade_from_min is None


def test_round_trip(build_pkg, keyring, info_factory):
    info = info_factory(version='3.0', upgrade_from_min='2.0')
    assert b'<UpgradeFromMin>2.0</UpgradeFromMin>' in render_info_xml(info)
    assert verify_package(build_pkg(version='3.0', upgrade_from_min='2.0'), keyring).info.upgrade_from_min == '2.0'


def test_from_dict_of_an_old_stored_row():
    row = PackageInfo('p', 'system-bios', 'System BIOS', '1.0', '2024-01-01', ['m'], ['any'], 'linux', True, False, False, False, './i').as_dict()
    del row['upgrade_from_min']
    assert PackageInfo.from_dict(row).upgrade_from_min is None


@pytest.mark.parametrize(
    'element, code',
    [
        ('<UpgradeFromMin></UpgradeFromMin>', 'xml_invalid'),
        ('<UpgradeFromMin> 0.5</UpgradeFromMin>', 'xml_invalid'),
        ('<UpgradeFromMin>../../x</UpgradeFromMin>', 'xml_invalid'),
        ('<UpgradeFromMin>0.5\n</UpgradeFromMin>', 'xml_invalid'),
        ('<UpgradeFromMin>' + 'a' * 65 + '</UpgradeFromMin>', 'xml_invalid'),
        ('<UpgradeFromMin>0.5</UpgradeFromMin><UpgradeFromMin>0.6</UpgradeFromMin>', 'xml_invalid'),
        ('<UpgradeFromMin>1.0</UpgradeFromMin>', 'upgrade_from_min_invalid'),  # not lower than Version 1.0
        ('<UpgradeFromMin>1.00</UpgradeFromMin>', 'upgrade_from_min_invalid'),  # the same version, written otherwise
        ('<UpgradeFromMin>2.0</UpgradeFromMin>', 'upgrade_from_min_invalid'),
    ],
    ids=['empty', 'space', 'path', 'newline', 'long', 'twice', 'equal', 'equal-spelling', 'higher'],
)
@pytest.mark.parametrize('schema_version', ['1', '2'])
def test_hostile_values_are_refused(craft, keyring, info_xml_text, element, code, schema_version):
    text = info_xml_text.replace(SEVERITY, SEVERITY + element).replace('schemaVersion="1"', 'schemaVersion="%s"' % schema_version)
    if schema_version == '2' and element.count('<UpgradeFromMin>') == 2:
        code = None  # a newer schema is read leniently: the first one counts, and it is valid
    path = craft([('install.sh', b'x')], info=text.encode())
    if code is None:
        assert verify_package(path, keyring).info.upgrade_from_min == '0.5'
        return
    with pytest.raises(PackageError) as caught:
        verify_package(path, keyring)
    assert caught.value.code == code and 'ExUpInfo.xml' in caught.value.msg


def test_before_severity_is_out_of_order(craft, keyring, info_xml_text):
    text = info_xml_text.replace(SEVERITY, '<UpgradeFromMin>0.5</UpgradeFromMin>' + SEVERITY)
    with pytest.raises(PackageError) as caught:
        verify_package(craft([('install.sh', b'x')], info=text.encode()), keyring)
    assert caught.value.code == 'xml_invalid'


def test_exup_tool_build_flag(tmp_path, capsys):
    assert cli.main(['keygen', '--out', str(tmp_path / 'keys')]) == 0
    (tmp_path / 'payload').mkdir()
    (tmp_path / 'payload' / 'install.sh').write_text('#!/bin/sh\nexit 0\n')
    words = ['build', '--payload', str(tmp_path / 'payload'), '--key', str(tmp_path / 'keys' / 'vendor.key'), '--package-id', 'p3']
    words += ['--module', 'system-bios', '--version', '3.0', '--release-date', '2026-01-01', '--model', 'M1', '--os', 'any']
    assert cli.main([*words, '--out', str(tmp_path / 'p3.zip'), '--upgrade-from-min', '2.0']) == 0
    ring = KeyRing.from_pem_list([str(tmp_path / 'keys' / 'vendor.pub')])
    assert verify_package(str(tmp_path / 'p3.zip'), ring).info.upgrade_from_min == '2.0'
    capsys.readouterr()
    assert cli.main([*words, '--out', str(tmp_path / 'bad.zip'), '--upgrade-from-min', '3.0']) != 0
    out, err = capsys.readouterr()
    assert 'upgrade_from_min_invalid' in out + err and not (tmp_path / 'bad.zip').exists()
