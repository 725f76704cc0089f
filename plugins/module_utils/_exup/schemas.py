# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""XML schemas of the update package (schema version 1).

They live here, as Python text, because modules carry only Python files to the
host; ``exup-tool schema`` writes them out and docs/schemas/ holds that copy.
"""

from __future__ import annotations

#: The schema version this code understands. A package with a higher
#: ``schemaVersion`` is stored but flagged incompatible (003 §2.1.4 "unknown").
PACKAGE_SCHEMA_VERSION = 1

#: The one definition of an id: PackageId, Module id, Version and OS of ExUpInfo.xml, and the
#: package_id, module_id, version, os and feed_id of a catalog. 1-64 ASCII letters, digits and
#: ``._+-``, starting with a letter or digit (so never a path). It is the XSD pattern below, and
#: package.py compiles it (re.ASCII, fullmatch) for every schema version and for catalog.py.
TOKEN_PATTERN = r'[A-Za-z0-9][A-Za-z0-9._+\-]{0,63}'

EXUPINFO_XSD = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
  <xs:simpleType name="token64">
    <xs:restriction base="xs:string">
      <xs:pattern value="%(token)s"/>
    </xs:restriction>
  </xs:simpleType>
  <xs:simpleType name="text">
    <xs:restriction base="xs:string">
      <xs:minLength value="1"/>
      <xs:maxLength value="256"/>
      <xs:pattern value="[^\\n\\r]*"/>
    </xs:restriction>
  </xs:simpleType>
  <xs:simpleType name="command">
    <xs:restriction base="xs:string">
      <xs:maxLength value="1024"/>
      <xs:pattern value="[^\\n\\r]*"/>
    </xs:restriction>
  </xs:simpleType>
  <xs:simpleType name="kind">
    <xs:restriction base="xs:string">
      <xs:enumeration value="linux"/>
      <xs:enumeration value="windows"/>
      <xs:enumeration value="bmc"/>
      <xs:enumeration value="offline"/>
    </xs:restriction>
  </xs:simpleType>
  <xs:simpleType name="severity">
    <xs:restriction base="xs:string">
      <xs:enumeration value="critical"/>
      <xs:enumeration value="recommended"/>
      <xs:enumeration value="optional"/>
    </xs:restriction>
  </xs:simpleType>
  <xs:element name="ExUpInfo">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="PackageId" type="token64"/>
        <xs:element name="Module">
          <xs:complexType>
            <xs:attribute name="id" type="token64" use="required"/>
            <xs:attribute name="name" type="text" use="required"/>
          </xs:complexType>
        </xs:element>
        <xs:element name="Version" type="token64"/>
        <xs:element name="ReleaseDate" type="xs:date"/>
        <xs:element name="Targets">
          <xs:complexType>
            <xs:sequence>
              <xs:element name="Model" type="text" maxOccurs="1000"/>
            </xs:sequence>
          </xs:complexType>
        </xs:element>
        <xs:element name="OperatingSystems">
          <xs:complexType>
            <xs:sequence>
              <xs:element name="OS" type="token64" maxOccurs="100"/>
            </xs:sequence>
          </xs:complexType>
        </xs:element>
        <xs:element name="Kind" type="kind"/>
        <xs:element name="AutoUpdate" type="xs:boolean"/>
        <xs:element name="RebootRequired" type="xs:boolean"/>
        <xs:element name="DowngradeSupported" type="xs:boolean"/>
        <xs:element name="UninstallSupported" type="xs:boolean"/>
        <xs:element name="InstallCommand" type="command"/>
        <xs:element name="UninstallCommand" type="command" minOccurs="0"/>
        <xs:element name="Severity" type="severity"/>
        <xs:element name="UpgradeFromMin" type="token64" minOccurs="0"/>
      </xs:sequence>
      <xs:attribute name="schemaVersion" type="xs:positiveInteger" use="required"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
""" % {'token': TOKEN_PATTERN}

EXUPHASH_XSD = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
  <xs:element name="ExUpHash">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="File" maxOccurs="10000">
          <xs:complexType>
            <xs:attribute name="path" use="required">
              <xs:simpleType>
                <xs:restriction base="xs:string">
                  <xs:minLength value="1"/>
                  <xs:maxLength value="512"/>
                  <xs:pattern value="[^\\n\\r\\\\:]*"/>
                </xs:restriction>
              </xs:simpleType>
            </xs:attribute>
            <xs:attribute name="size" type="xs:nonNegativeInteger" use="required"/>
            <xs:attribute name="sha256" use="required">
              <xs:simpleType>
                <xs:restriction base="xs:string">
                  <xs:pattern value="[0-9a-f]{64}"/>
                </xs:restriction>
              </xs:simpleType>
            </xs:attribute>
          </xs:complexType>
        </xs:element>
        <xs:element name="Signature">
          <xs:complexType>
            <xs:simpleContent>
              <xs:extension base="xs:base64Binary">
                <xs:attribute name="keyId" use="required">
                  <xs:simpleType>
                    <xs:restriction base="xs:string">
                      <xs:pattern value="[0-9a-f]{16}"/>
                    </xs:restriction>
                  </xs:simpleType>
                </xs:attribute>
                <xs:attribute name="algorithm" use="required">
                  <xs:simpleType>
                    <xs:restriction base="xs:string">
                      <xs:enumeration value="Ed25519"/>
                    </xs:restriction>
                  </xs:simpleType>
                </xs:attribute>
              </xs:extension>
            </xs:simpleContent>
          </xs:complexType>
        </xs:element>
      </xs:sequence>
      <xs:attribute name="schemaVersion" type="xs:positiveInteger" use="required"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""
