# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository service's OpenAPI 3.1 description, built in code (so it ships inside the collection).

GET /v1/openapi.json serves it; docs/service-api.md says how to read it, and
tests/system/test_service_openapi.py checks the running service against it with schemathesis.
"""

from __future__ import annotations

import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire

OPENAPI_PATH = '/v1/openapi.json'


def description(collection_version: str) -> dict[str, typing.Any]:
    """The OpenAPI 3.1 document of the service."""
    return {
        'openapi': '3.1.0',
        'info': {'title': wire.SERVICE, 'version': '%d (exup.fleet %s)' % (wire.API_VERSION, collection_version)},
        'paths': {},
    }
