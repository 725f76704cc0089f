# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The small layer between AnsibleModule and the exup core (as amazon.aws does it).

It checks the third-party libraries once, turns an ``ExupError`` into
``fail_json`` with its stable ``error`` code, and holds the option specs shared
by several modules, so each module is an argument spec plus one call.
"""

from __future__ import annotations

import sys
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.exup.fleet.plugins.module_utils._exup import signing, xmlsafe
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


#: the packages that bring each third-party library (RHEL, SLES, Ubuntu and Debian name them alike), for the message
LIBRARY_PACKAGES = {'cryptography': 'python3-cryptography', 'lxml': 'python3-lxml', 'requests': 'python3-requests'}


def missing_libraries(libraries):
    """A failed prerequisite ``{code, library, msg}`` per library that cannot be imported; ``libraries`` is (name, present, error)."""
    blockers = []
    for name, present, error in libraries:
        if not present:
            msg = "the Python library %s cannot be imported by %s (%s): install the package %s (dnf, zypper or apt) or run 'pip install %s' for it" % (
                name,
                sys.executable or 'python',
                error,
                LIBRARY_PACKAGES[name],
                name,
            )
            blockers.append({'code': 'missing_library', 'library': name, 'msg': msg})
    return blockers


class ExupModule(AnsibleModule):
    """AnsibleModule that knows the exup core's libraries and errors."""

    def __init__(self, argument_spec, needs_http=False, **kwargs):
        super().__init__(argument_spec=argument_spec, **kwargs)
        libraries = [('cryptography', signing.HAS_CRYPTOGRAPHY, signing.CRYPTOGRAPHY_IMPORT_ERROR), ('lxml', xmlsafe.HAS_LXML, xmlsafe.LXML_IMPORT_ERROR)]
        if needs_http:
            # Imported only here: requests costs about 0.1 s, and modules on managed hosts never need it.
            from ansible_collections.exup.fleet.plugins.module_utils._exup import transport

            libraries.append(('requests', transport.HAS_REQUESTS, transport.REQUESTS_IMPORT_ERROR))
        blockers = missing_libraries(libraries)
        if blockers:
            # a failed prerequisite with its reason and a stable code, not a traceback (issue 12)
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
