# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository service's configuration: one JSON file on the repository host, checked before anything starts.

The settings an operator changes while the service runs (download schedule, proxy, passwords,
notification targets: 003 §3.3) are not here: the repository keeps them. Here is only what the
process needs to start: where the store is, where it listens, its TLS files and the vendor feed it
downloads from (003 §3.3 4-(ア)-①: the distribution server's address cannot be edited).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire

CONFIG_LIMIT = 1024 * 1024
CREDENTIALS_FILE = 'service-credentials.json'  # in the store: the Argon2id hashes, 0600


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """What the service needs to start. Paths are of the repository host."""

    store: str
    host: str = '127.0.0.1'
    port: int = wire.DEFAULT_PORT
    tls_certificate: str | None = None
    tls_key: str | None = None
    feed_url: str | None = None
    trusted_keys: tuple[str, ...] = ()
    workers: int = 1
    manager_id: str = 'local'  # the repository host's own manager (003 Fig. 4: each repository's own manager)
    access_log: bool = False  # one line per request on the service's output: method, path (no query: tickets stay out), status
    # what feed_url names: the vendor's signed catalog, or an upstream repository service (chained repositories, Fig. 5)
    upstream: str = 'vendor'
    feed_username: str | None = None  # Basic auth to feed_url's origin only (an upstream service's admin user)
    feed_password_file: str | None = None  # a file of this host holding that password (0600), never the password here
    feed_ca_path: str | None = None  # CA bundle for an https:// feed_url

    def feed_password(self) -> str | None:
        """The feed's password, read from ``feed_password_file`` (its first line; at most 4 KiB)."""
        if not self.feed_password_file:
            return None
        try:
            with open(self.feed_password_file, encoding='utf-8') as handle:
                text = handle.read(4097)
        except (OSError, UnicodeDecodeError) as exc:
            raise ExupError(
                'cannot read feed_password_file %s: %s' % (self.feed_password_file, getattr(exc, 'strerror', None) or exc), code='config_invalid'
            ) from None
        password = text.splitlines()[0] if text else ''
        if not password or len(text) > 4096:
            raise ExupError('feed_password_file %s must hold the password on its first line (at most 4 KiB)' % self.feed_password_file, code='config_invalid')
        return password

    @property
    def credentials_path(self) -> str:
        return os.path.join(self.store, CREDENTIALS_FILE)

    @property
    def base_url(self) -> str:
        return '%s://%s:%d' % ('https' if self.tls_certificate else 'http', self.host, self.port)


FIELDS = {field.name: field for field in dataclasses.fields(ServiceConfig)}


def config_from_dict(data: object) -> ServiceConfig:
    """Validate a configuration; every problem is config_invalid naming the field."""
    if not isinstance(data, dict):
        raise ExupError('the service configuration must be a JSON object', code='config_invalid')
    unknown = sorted(str(key) for key in data if key not in FIELDS)
    if unknown:
        raise ExupError('unknown setting %s in the service configuration; the settings are %s' % (', '.join(unknown), ', '.join(FIELDS)), code='config_invalid')
    if not isinstance(data.get('store'), str) or not data['store']:
        raise ExupError('the service configuration needs store: the path of the repository on this host', code='config_invalid')
    port = data.get('port', wire.DEFAULT_PORT)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ExupError('port must be a number from 1 to 65535', code='config_invalid')
    workers = data.get('workers', 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
        raise ExupError('workers must be a number from 1 to 64', code='config_invalid')
    if bool(data.get('tls_certificate')) != bool(data.get('tls_key')):
        raise ExupError('give tls_certificate and tls_key together (HTTPS), or neither (HTTP)', code='config_invalid')
    keys = data.get('trusted_keys') or []
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise ExupError('trusted_keys must be a list of key file paths or PEM texts', code='config_invalid')
    if not isinstance(data.get('access_log', False), bool):
        raise ExupError('access_log must be true or false', code='config_invalid')
    if data.get('upstream', 'vendor') not in ('vendor', 'repository'):
        raise ExupError(
            'upstream must be vendor (feed_url is the vendor feed) or repository (feed_url is an upstream repository service)', code='config_invalid'
        )
    if data.get('upstream') == 'repository' and not data.get('feed_url'):
        raise ExupError('upstream repository needs feed_url: the upstream repository service, for example https://dmz.example.com:8080', code='config_invalid')
    if bool(data.get('feed_username')) != bool(data.get('feed_password_file')):
        raise ExupError('give feed_username and feed_password_file together, or neither', code='config_invalid')
    for name in ('host', 'tls_certificate', 'tls_key', 'feed_url', 'manager_id', 'feed_username', 'feed_password_file', 'feed_ca_path'):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise ExupError('%s must be a string' % name, code='config_invalid')
    return ServiceConfig(**dict(data, store=os.path.abspath(data['store']), trusted_keys=tuple(keys)))


def read_config(path: str) -> ServiceConfig:
    try:
        with open(path, 'rb') as handle:
            text = handle.read(CONFIG_LIMIT + 1)
    except OSError as exc:
        raise ExupError('cannot read the service configuration %s: %s' % (path, exc.strerror), code='config_invalid') from None
    if len(text) > CONFIG_LIMIT:
        raise ExupError('the service configuration %s is larger than 1 MiB' % path, code='config_invalid')
    try:
        data: typing.Any = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply for the parser
        raise ExupError('the service configuration %s is not JSON: %s' % (path, exc), code='config_invalid') from None
    return config_from_dict(data)
