# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsing untrusted XML: no DTD, no entities, no network, bounded size, XSD-validated."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml.etree import XMLSchema, _Element as Element

    from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

try:
    from lxml import etree

    HAS_LXML = True
    LXML_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module wrapper
    HAS_LXML = False
    LXML_IMPORT_ERROR = exc

MAX_XML_BYTES = 4 * 1024 * 1024


def _parser() -> etree.XMLParser:
    # resolve_entities=False and load_dtd=False stop entity expansion and external
    # entities; we also refuse any DOCTYPE outright (a package never needs one).
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False, remove_comments=True, remove_pis=True
    )


# lxml 6.1 / libxml2 2.14 are not safe here, measured: XSDs compiled in several threads at the
# same moment failed ("xmlSchemaPValAttrNodeValue, the given type is not a built-in type"),
# looped at 100% CPU or segfaulted; and one XMLSchema validating in 8 threads gave the error
# of another thread's document (or none) in 13% of failed validations, because each XMLSchema
# object keeps one error log. So each XSD is compiled once, and every validation with it runs
# under this lock (about 11 us for a package's XML: the lock costs nothing a sync can see).
_SCHEMA_LOCK = threading.Lock()
_SCHEMAS: dict[str, XMLSchema] = {}


def _schema(xsd_text: str) -> XMLSchema:
    """The compiled schema of ``xsd_text``; the caller holds _SCHEMA_LOCK."""
    schema = _SCHEMAS.get(xsd_text)
    if schema is None:
        schema = _SCHEMAS[xsd_text] = etree.XMLSchema(etree.fromstring(xsd_text.encode('utf-8')))
    return schema


def parse_untrusted(data: bytes, what: str, error_class: type[ExupError], xsd_text: str | None = None) -> Element:
    """Parse ``data`` (bytes) and return the root element.

    ``xsd_text`` validates the document when given. Raises ``error_class`` with
    code ``xml_invalid`` and a message naming ``what`` on any problem.
    """
    if len(data) > MAX_XML_BYTES:
        raise error_class('%s is larger than %d bytes' % (what, MAX_XML_BYTES), code='xml_invalid')
    if b'<!DOCTYPE' in data or b'<!ENTITY' in data:
        raise error_class('%s contains a DOCTYPE or ENTITY declaration, which is not allowed' % what, code='xml_invalid')
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise error_class('%s is not well-formed XML: %s' % (what, exc), code='xml_invalid') from exc
    if root.getroottree().docinfo.internalDTD is not None:
        raise error_class('%s contains a DTD, which is not allowed' % what, code='xml_invalid')
    if xsd_text is not None:
        validate(root, what, error_class, xsd_text)
    return root


def validate(root: Element, what: str, error_class: type[ExupError], xsd_text: str) -> None:
    """Validate a parsed document against ``xsd_text``; raise ``error_class`` (code ``xml_invalid``)."""
    with _SCHEMA_LOCK:
        schema = _schema(xsd_text)
        if schema.validate(root):
            return
        error = schema.error_log.last_error
        line, message = (error.line, error.message) if error is not None else ('?', 'invalid')
    raise error_class('%s does not match its schema: line %s: %s' % (what, line, message), code='xml_invalid')
