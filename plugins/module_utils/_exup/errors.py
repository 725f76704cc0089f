# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the exup core: every failure has a stable ``code`` and a clear ``msg``."""

from __future__ import annotations

from typing import Any


class ExupError(Exception):
    """Base error. ``code`` is stable (tests and playbooks match on it); ``msg`` is for people."""

    code = 'error'

    def __init__(self, msg: str, code: str | None = None, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        if code:
            self.code = code
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        result = {'code': self.code, 'msg': self.msg}
        result.update(self.details)
        return result


class PackageError(ExupError):
    """An update package is malformed, tampered or untrusted."""

    code = 'package_invalid'


class CatalogError(ExupError):
    """The feed catalog is malformed, untrusted, expired or rolled back."""

    code = 'catalog_invalid'


class TransportError(ExupError):
    """A network operation failed (connection, proxy, TLS, HTTP status, size)."""

    code = 'transport_failed'


class RepositoryError(ExupError):
    """A repository operation cannot be done (busy, missing package, in use)."""

    code = 'repository_error'
