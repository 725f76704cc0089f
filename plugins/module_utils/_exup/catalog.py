# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The signed feed catalog served by the vendor's distribution server.

A catalog is JSON: ``{"signed": {...}, "signatures": [{"keyid", "sig"}]}`` in the
manner of The Update Framework. The signature covers the canonical JSON of
``signed`` (sorted keys, no spaces, UTF-8), so any static HTTP server can serve
the file as-is. Rules (checked in this order, each with its own error code):
the envelope and every field are well-formed; a trusted key signed it; its
``version`` is not lower than the last one this repository accepted (rollback);
it has not expired (freeze).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import CatalogError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import KINDS, is_date, is_id, is_text

if TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey

CATALOG_TYPE = 'exup-catalog'
SPEC_VERSION = 1
#: About four times a 20,000-entry catalog (8.2 MiB). Checked before any decoding or parsing: an
#: unsigned 250 MiB catalog under the old limit of 256 MiB cost 2 GiB of RSS and 17 s before unknown_key.
MAX_CATALOG_BYTES = 32 * 1024 * 1024
MAX_PACKAGE_SIZE = 64 * 1024**3
#: How far one catalog may raise the version above the one accepted before (0 the first time). A
#: catalog signed with a huge version (2**63) would otherwise lock the repository out of the
#: vendor's next real catalogs; 2**32 still lets a vendor number catalogs by the second.
MAX_VERSION_STEP = 2**32
EPOCH = '1970-01-01T00:00:00Z'

# ASCII only and used with fullmatch (no trailing newline); ids and dates follow package.py's rules.
_SHA256 = re.compile(r'[0-9a-f]{64}', re.ASCII)
_REL_URL = re.compile(r'[A-Za-z0-9._~\-/%]{1,1024}', re.ASCII)
_TIME = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z', re.ASCII)
TOO_DEEP = 'catalog is nested too deeply to be a catalog'


def _shown(value: object) -> str:
    """A catalog value for a message, cut short: a message must not carry megabytes of a hostile catalog."""
    if isinstance(value, (dict, list)):
        return 'a JSON %s' % ('object' if isinstance(value, dict) else 'array')
    if isinstance(value, str) and len(value) > 64:
        return repr(value[:64]) + '...'
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + '...'


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def parse_time(text: object, what: str = 'time') -> datetime.datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SSZ`` (UTC) strictly.

    A regex for the form and the C ``fromisoformat`` for the values: strptime
    made up a third of parsing a 20,000-entry catalog.
    """
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise CatalogError('catalog %s %s is not a UTC time of the form YYYY-MM-DDTHH:MM:SSZ' % (what, _shown(text)), code='catalog_invalid')
    try:
        return datetime.datetime.fromisoformat(text[:-1]).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise CatalogError('catalog %s %s is not a valid time' % (what, _shown(text)), code='catalog_invalid') from None


def canonical_json(value: object) -> bytes:
    """The signed bytes of ``value``; a lone surrogate (JSON allows the escape \\ud800) or a nesting
    too deep for the encoder is ``catalog_invalid``, not a traceback."""
    try:
        return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8')
    except UnicodeEncodeError as exc:
        found = exc.object[exc.start : exc.end].encode('unicode_escape').decode('ascii')[:40]
        raise CatalogError('catalog holds a lone surrogate (%s), which is not text' % found, code='catalog_invalid') from None
    except RecursionError:
        raise CatalogError(TOO_DEEP, code='catalog_invalid') from None


def _decode(data: bytes) -> Any:
    """The JSON value of catalog bytes: strict UTF-8 (json.loads of bytes passes encoded surrogates), bounded depth."""
    try:
        return json.loads(data.decode('utf-8'))
    except UnicodeDecodeError as exc:
        raise CatalogError('catalog is not UTF-8: %s' % exc, code='catalog_invalid') from None
    except RecursionError:
        raise CatalogError(TOO_DEEP, code='catalog_invalid') from None
    except ValueError as exc:
        raise CatalogError('catalog is not valid JSON: %s' % exc, code='catalog_invalid') from None


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """One package the feed offers: enough to select it without downloading it.

    Slots, no __dict__: a sync holds 20,000 of these (a 3.9 dataclass takes no slots=True, hence the tuple).
    """

    __slots__ = (
        'auto_update',
        'kind',
        'models',
        'module_id',
        'module_name',
        'os',
        'package_id',
        'published',
        'release_date',
        'sha256',
        'size',
        'url',
        'version',
    )

    package_id: str
    module_id: str
    module_name: str
    version: str
    release_date: str
    published: str
    models: tuple[str, ...]
    os: tuple[str, ...]
    kind: str
    auto_update: bool
    size: int
    sha256: str
    url: str

    def targets(self, model: str, os_name: str) -> bool:
        return model in self.models and ('any' in self.os or os_name in self.os)

    def as_dict(self) -> dict[str, Any]:
        result = dataclasses.asdict(self)
        result['models'] = list(self.models)
        result['os'] = list(self.os)
        return result


@dataclasses.dataclass
class Catalog:
    version: int
    generated: str
    expires: str
    entries: list[CatalogEntry]
    key_ids: list[str]
    feed_id: str = ''

    def is_complete(self, since: str) -> bool:
        """True when the catalog lists packages published before ``since``, so the server did not filter it."""
        return since == EPOCH or any(entry.published < since for entry in self.entries)

    def entries_since(self, since: str) -> list[CatalogEntry]:
        """Entries published at or after ``since`` (003 §2.2.1; '1970-01-01T00:00:00Z' the first time).

        Inclusive: ``since`` is the previous catalog's generation time, and a
        package published in that same second must not be missed (re-merging
        an entry already known is harmless).
        """
        return [entry for entry in self.entries if entry.published >= since]


def shared(common: dict[Any, Any], value: Any) -> Any:
    """One object for equal values (models, OS lists, kinds, module ids repeat over 20,000 entries): less memory held."""
    return common.setdefault(value, value)


def _entry(raw: object, index: int, common: dict[Any, Any]) -> CatalogEntry:
    where = 'catalog entry %d' % index
    if not isinstance(raw, dict):
        raise CatalogError('%s is not an object' % where, code='catalog_invalid')

    def field(name: str, kind: type) -> Any:
        value = raw.get(name)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise CatalogError('%s has no valid %s' % (where, name), code='catalog_invalid')
        return value

    package_id = field('package_id', str)
    where = 'catalog entry %d (%s)' % (index, package_id if is_id(package_id) else _shown(package_id))
    for name in ('package_id', 'module_id', 'version'):
        if not is_id(field(name, str)):
            raise CatalogError('%s has an invalid %s' % (where, name), code='catalog_invalid')
    module_name = raw.get('module_name') or raw['module_id']
    if not is_text(module_name):
        raise CatalogError('%s has no valid module_name' % where, code='catalog_invalid')
    url = field('url', str)
    if not _REL_URL.fullmatch(url) or url.startswith('/') or '..' in url.split('/') or '//' in url:
        raise CatalogError('%s has url %s, which is not a plain relative path' % (where, _shown(url)), code='catalog_invalid')
    sha256 = field('sha256', str)
    if not _SHA256.fullmatch(sha256):
        raise CatalogError('%s has an invalid sha256' % where, code='catalog_invalid')
    size = field('size', int)
    if not 0 < size <= MAX_PACKAGE_SIZE:
        raise CatalogError('%s has size %d outside 1..%d' % (where, size, MAX_PACKAGE_SIZE), code='catalog_invalid')
    models, os_names = field('models', list), field('os', list)
    if not models or not os_names or not all(is_text(item) for item in models) or not all(is_id(item) for item in os_names):
        raise CatalogError('%s has no valid models or os list' % where, code='catalog_invalid')
    if not is_date(field('release_date', str)):
        raise CatalogError('%s has an invalid release_date' % where, code='catalog_invalid')
    parse_time(field('published', str), 'published time of %s' % where)
    kind = field('kind', str)
    if kind not in KINDS:
        raise CatalogError('%s has unknown kind %s' % (where, _shown(kind)), code='catalog_invalid')
    return CatalogEntry(
        package_id=package_id,
        module_id=shared(common, raw['module_id']),
        module_name=shared(common, module_name),
        version=raw['version'],
        release_date=shared(common, raw['release_date']),
        published=raw['published'],
        models=shared(common, tuple(shared(common, model) for model in models)),
        os=shared(common, tuple(shared(common, name) for name in os_names)),
        kind=shared(common, kind),
        auto_update=field('auto_update', bool),
        size=size,
        sha256=sha256,
        url=url,
    )


def build_catalog(
    entries: Iterable[CatalogEntry | Mapping[str, Any]],
    version: int,
    signing_keys: Iterable[SigningKey],
    generated: datetime.datetime | None = None,
    expires_in: datetime.timedelta = datetime.timedelta(days=30),
    feed_id: str | None = None,
) -> bytes:
    """Return signed catalog bytes for ``entries`` (CatalogEntry or dicts); ``feed_id`` names the feed (optional)."""
    generated = generated or utc_now()
    signed: dict[str, Any] = {
        'type': CATALOG_TYPE,
        'spec_version': SPEC_VERSION,
        'version': int(version),
        'generated': format_time(generated),
        'expires': format_time(generated + expires_in),
        'entries': [entry.as_dict() if isinstance(entry, CatalogEntry) else dict(entry) for entry in entries],
    }
    if feed_id:
        signed['feed_id'] = feed_id
    message = canonical_json(signed)
    signatures = [{'keyid': key.key_id, 'sig': key.sign(message)} for key in signing_keys]
    return json.dumps({'signed': signed, 'signatures': signatures}, separators=(',', ':')).encode('utf-8')


def check_version(version: int, min_version: int) -> None:
    """The version rules against the version accepted before from the same feed (0: none yet).

    Never lower (rollback attack), and never more than MAX_VERSION_STEP higher (a lock-out).
    """
    if version < min_version:
        raise CatalogError(
            'catalog version %d is lower than version %d accepted before: refusing a rollback' % (version, min_version),
            code='catalog_rollback',
            version=version,
            min_version=min_version,
        )
    if version - min_version > MAX_VERSION_STEP:
        raise CatalogError(
            'catalog version %d is more than %d above version %d accepted before: refusing a jump that would lock out '
            'the next catalogs (accept it with accept_catalog_version_reset if the vendor really did this)' % (version, MAX_VERSION_STEP, min_version),
            code='catalog_version_jump',
            version=version,
            min_version=min_version,
        )


def same_feed(stored_feed_id: str | None, stored_key_ids: Iterable[str], catalog: Catalog) -> bool:
    """True when ``catalog`` comes from the feed whose catalog was accepted before, whatever its URL.

    A feed is known by the ``feed_id`` of its signed catalog; when either catalog has none, by its
    signing keys (one trusted key in common: a key rotation keeps the feed).
    """
    if stored_feed_id and catalog.feed_id:
        return stored_feed_id == catalog.feed_id
    return bool(set(stored_key_ids) & set(catalog.key_ids))


def _key_names(signatures: list[Any]) -> str:
    """The key ids a catalog names, for a message: the first five (a catalog may carry thousands)."""
    names = [sig['keyid'] if isinstance(sig.get('keyid'), str) else '?' for sig in signatures if isinstance(sig, dict)]
    shown = ', '.join(ascii(name)[1:-1][:64] for name in names[:5]) or 'none'
    return shown + (' and %d more' % (len(names) - 5) if len(names) > 5 else '')


def _entries(raw_entries: list[Any]) -> list[CatalogEntry]:
    """The checked entries; each raw dict is let go once its entry is made, so the JSON tree and the entries are not
    both whole in memory (``raw_entries`` is parse_catalog's own)."""
    common: dict[Any, Any] = {}
    entries = []
    for index, raw in enumerate(raw_entries):
        raw_entries[index] = None
        entries.append(_entry(raw, index, common))
    return entries


def parse_catalog(data: bytes, keyring: KeyRing, min_version: int | None = 0, now: datetime.datetime | None = None) -> Catalog:
    """Verify and parse catalog bytes.

    ``min_version`` is the version accepted before from this feed (see check_version); None leaves the
    version rules to the caller, which must know the feed's identity (same_feed) first.
    """
    if len(data) > MAX_CATALOG_BYTES:
        raise CatalogError('catalog is larger than %d bytes (%d bytes): refused before parsing' % (MAX_CATALOG_BYTES, len(data)), code='catalog_invalid')
    envelope = _decode(data)
    del data  # when the caller passed its last reference (verify_answer pops the response's body), the body goes now
    if not isinstance(envelope, dict) or not isinstance(envelope.get('signed'), dict) or not isinstance(envelope.get('signatures'), list):
        raise CatalogError('catalog is not a signed envelope {"signed": ..., "signatures": [...]}', code='catalog_invalid')
    signed = envelope['signed']
    if signed.get('type') != CATALOG_TYPE:
        raise CatalogError('catalog type is %s, not %r' % (_shown(signed.get('type')), CATALOG_TYPE), code='catalog_invalid')
    if signed.get('spec_version') != SPEC_VERSION:
        raise CatalogError(
            'catalog spec_version %s is not supported (this version reads %d)' % (_shown(signed.get('spec_version')), SPEC_VERSION), code='catalog_unsupported'
        )

    # Signature: at least one signature by a trusted key, and every trusted signature must be valid.
    message = canonical_json(signed)
    trusted = [sig for sig in envelope['signatures'] if isinstance(sig, dict) and sig.get('keyid') in keyring.key_ids]
    if not trusted:
        names = _key_names(envelope['signatures'])
        raise CatalogError('catalog is signed by no trusted key (signed by: %s)' % names, code='unknown_key')
    for sig in trusted:
        keyring.verify(sig['keyid'], str(sig.get('sig', '')), message, CatalogError, 'catalog')
    del message  # 8 MiB at full size: not held while the entries are built

    version = signed.get('version')
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CatalogError('catalog version %s is not a positive integer' % _shown(version), code='catalog_invalid')
    if min_version is not None:
        check_version(version, min_version)
    feed_id = signed.get('feed_id', '')
    if not isinstance(feed_id, str) or (feed_id and not is_id(feed_id)):
        raise CatalogError('catalog feed_id %s is not a token of letters, digits and ._+-' % _shown(feed_id), code='catalog_invalid')
    generated = parse_time(signed.get('generated'), 'generated time')
    expires = parse_time(signed.get('expires'), 'expiry')
    now = now or utc_now()
    if expires <= now:
        raise CatalogError(
            'catalog expired at %s (generated %s): the feed is stale or frozen' % (signed['expires'], signed['generated']), code='catalog_expired'
        )
    raw_entries = signed.get('entries')
    if not isinstance(raw_entries, list):
        raise CatalogError('catalog has no entries list', code='catalog_invalid')
    entries = _entries(raw_entries)
    seen: set[str] = set()
    files: dict[str, str] = {}
    for entry in entries:
        if entry.package_id in seen:
            raise CatalogError('catalog lists package %s twice' % entry.package_id, code='catalog_invalid')
        seen.add(entry.package_id)
        # Each package's id is inside its file, so two entries cannot share one file; and a shared
        # digest would have two downloads write the same .part at once.
        if entry.sha256 in files:
            raise CatalogError('catalog gives packages %s and %s the same SHA-256' % (files[entry.sha256], entry.package_id), code='catalog_invalid')
        files[entry.sha256] = entry.package_id
    return Catalog(
        version=version,
        generated=format_time(generated),
        expires=format_time(expires),
        entries=entries,
        key_ids=sorted(sig['keyid'] for sig in trusted),
        feed_id=feed_id,
    )
