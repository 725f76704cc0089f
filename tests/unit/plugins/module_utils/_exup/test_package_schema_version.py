# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""UpgradeFromMin keeps schemaVersion 1 (docs/package-format.md, issue 13): readers from before the field must refuse it.

The schema-1 XSD of those readers is today's without the UpgradeFromMin line (f267ce6 added only that line): it refuses
a package with the field, so an older collection never applies it over a version below its minimum. A higher schema
version would have sent it down the lenient path instead, which drops elements the reader does not know.
"""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import schemas
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import PackageError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import render_info_xml
from ansible_collections.exup.fleet.plugins.module_utils._exup.xmlsafe import parse_untrusted

FIELD_LINE = '        <xs:element name="UpgradeFromMin" type="token64" minOccurs="0"/>\n'


def older_xsd() -> str:
    assert FIELD_LINE in schemas.EXUPINFO_XSD
    return schemas.EXUPINFO_XSD.replace(FIELD_LINE, '')


def test_a_package_with_a_minimum_is_still_schema_1(info_factory):
    text = render_info_xml(info_factory(version='3.0', upgrade_from_min='2.0'))
    assert schemas.PACKAGE_SCHEMA_VERSION == 1 and b'schemaVersion="1"' in text and b'<UpgradeFromMin>2.0</UpgradeFromMin>' in text
    parse_untrusted(text, 'ExUpInfo.xml', PackageError, schemas.EXUPINFO_XSD)  # today's readers take it


def test_a_reader_from_before_the_field_refuses_it_and_still_reads_packages_without_it(info_factory):
    with pytest.raises(PackageError) as caught:
        parse_untrusted(render_info_xml(info_factory(version='3.0', upgrade_from_min='2.0')), 'ExUpInfo.xml', PackageError, older_xsd())
    assert caught.value.code == 'xml_invalid' and 'UpgradeFromMin' in caught.value.msg
    parse_untrusted(render_info_xml(info_factory(version='3.0')), 'ExUpInfo.xml', PackageError, older_xsd())
