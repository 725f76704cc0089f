# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The small layer between AnsibleModule and the exup core (as amazon.aws does it).

It checks the third-party libraries once, turns an ``ExupError`` into
``fail_json`` with its stable ``error`` code, and holds the option specs shared
by several modules, so each module is an argument spec plus one call.
"""

from __future__ import annotations

import os
import sys
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.exup.fleet.plugins.module_utils._exup import pylibs, signing, xmlsafe
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

#: how to reach a repository service (``repository: https://host:8080``); unused for a local path
REMOTE_SPEC = {
    'repository_user': {'type': 'str', 'default': 'admin', 'choices': ['admin', 'read']},
    'repository_password': {'type': 'str', 'no_log': True},
    'repository_ca_path': {'type': 'path'},
    'repository_validate_certs': {'type': 'bool', 'default': True},
    'repository_timeout': {'type': 'int', 'default': 30},
}

REPOSITORY_SPEC = dict(
    REMOTE_SPEC,
    repository={'type': 'str', 'required': True},  # a path (expanded like type=path) or a service URL
    manager_id={'type': 'str', 'default': 'local'},
)

TRUST_SPEC = {
    'trusted_keys': {'type': 'list', 'elements': 'str', 'required': True, 'no_log': False},
}

HTTP_SPEC = {
    'proxy_url': {'type': 'str'},
    'proxy_username': {'type': 'str'},
    'proxy_password': {'type': 'str', 'no_log': True},
    'proxy_auth': {'type': 'str', 'default': 'basic', 'choices': ['basic', 'digest']},
    'validate_certs': {'type': 'bool', 'default': True},
    'ca_path': {'type': 'path'},
    'timeout': {'type': 'int', 'default': 30},
}


def _os_release(root='/'):
    """(ID, major version) of the machine's ``etc/os-release`` below ``root``; ('', '') when it cannot be read."""
    try:
        with open(os.path.join(root, 'etc', 'os-release'), encoding='utf-8', errors='replace') as handle:
            return pylibs.os_release(handle.read())
    except OSError:
        return '', ''


def missing_libraries(libraries, root='/'):
    """A failed prerequisite ``{code, library, package, msg}`` per library that cannot be imported; ``libraries`` is (name, present, error).

    The package named is the one for this interpreter's version on the OS below ``root`` (pylibs.library_package).
    """
    os_id, os_major = _os_release(root)
    return pylibs.missing_library_blockers(libraries, sys.version_info[:2], sys.executable or 'python', os_id, os_major)


class ExupModule(AnsibleModule):
    """AnsibleModule that knows the exup core's libraries and errors."""

    def __init__(self, argument_spec, needs_http=False, defer_libraries=False, **kwargs):
        """``defer_libraries``: the module calls require_libraries() itself (exup_host reports them in its inventory phase)."""
        super().__init__(argument_spec=argument_spec, **kwargs)
        libraries = [('cryptography', signing.HAS_CRYPTOGRAPHY, signing.CRYPTOGRAPHY_IMPORT_ERROR), ('lxml', xmlsafe.HAS_LXML, xmlsafe.LXML_IMPORT_ERROR)]
        if needs_http:
            # Imported only here: requests costs about 0.1 s, and modules on managed hosts never need it.
            from ansible_collections.exup.fleet.plugins.module_utils._exup import transport

            libraries.append(('requests', transport.HAS_REQUESTS, transport.REQUESTS_IMPORT_ERROR))
        self.libraries = libraries
        if not defer_libraries:
            self.require_libraries()

    def library_blockers(self, root='/'):
        """The libraries this module needs that its Python cannot import, as failed prerequisites (OS of the machine below ``root``)."""
        return missing_libraries(self.libraries, root)

    def require_libraries(self, root='/'):
        """Fail with ``error: missing_library`` when a library is missing: a failed prerequisite with its reason, not a traceback (issue 12)."""
        blockers = self.library_blockers(root)
        if blockers:
            self.fail_json(msg='; '.join(item['msg'] for item in blockers), error='missing_library', blockers=blockers)

    def run(self, function, *args, **kwargs):
        """Call the core; an ExupError becomes a failure with ``error`` = its code."""
        try:
            return function(*args, **kwargs)
        except ExupError as exc:
            details = dict(exc.details)
            self.fail_json(msg=exc.msg, error=exc.code, **details)
        except OSError as exc:
            self.fail_json(msg='%s: %s' % (exc.strerror or exc, getattr(exc, 'filename', '') or ''), error='os_error', exception=traceback.format_exc())
        return None

    def http_client(self):
        from ansible_collections.exup.fleet.plugins.module_utils._exup import transport

        params = self.params
        return self.run(
            transport.HttpClient,
            proxy_url=params['proxy_url'],
            proxy_username=params['proxy_username'],
            proxy_password=params['proxy_password'],
            proxy_auth=params['proxy_auth'],
            validate_certs=params['validate_certs'],
            ca_path=params['ca_path'],
            timeout=params['timeout'],
        )

    def repository(self):
        """The repository of ``repository``: the local store at that path, or the repository service at that URL."""
        from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.remote import open_repository

        return self.run(open_repository, self.params, self.check_mode)

    def keyring(self):
        return self.run(signing.KeyRing.from_pem_list, self.params['trusted_keys'])
