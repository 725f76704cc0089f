# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsing untrusted XML: no DTD, no entities, no network, bounded size, XSD-validated."""

from __future__ import annotations

import threading

try:
    from lxml import etree
    HAS_LXML = True
    LXML_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module wrapper
    HAS_LXML = False
    LXML_IMPORT_ERROR = exc

MAX_XML_BYTES = 4 * 1024 * 1024


def _parser():
    # resolve_entities=False and load_dtd=False stop entity expansion and external
    # entities; we also refuse any DOCTYPE outright (a package never needs one).
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


_local = threading.local()


def _schema(xsd_text):
    """The compiled schema, one per thread: sync verifies packages in several threads at once,
    and lxml does not promise that one XMLSchema object may validate in two threads."""
    cache = _local.__dict__.setdefault('schemas', {})
    if xsd_text not in cache:
        cache[xsd_text] = etree.XMLSchema(etree.fromstring(xsd_text.encode('utf-8')))
    return cache[xsd_text]


def parse_untrusted(data, what, error_class, xsd_text=None):
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
        raise error_class('%s is not well-formed XML: %s' % (what, exc), code='xml_invalid')
    if root.getroottree().docinfo.internalDTD is not None:
        raise error_class('%s contains a DTD, which is not allowed' % what, code='xml_invalid')
    if xsd_text is not None:
        validate(root, what, error_class, xsd_text)
    return root


def validate(root, what, error_class, xsd_text):
    """Validate a parsed document against ``xsd_text``; raise ``error_class`` (code ``xml_invalid``)."""
    schema = _schema(xsd_text)
    if not schema.validate(root):
        error = schema.error_log.last_error
        raise error_class('%s does not match its schema: line %s: %s' % (what, error.line, error.message), code='xml_invalid')
