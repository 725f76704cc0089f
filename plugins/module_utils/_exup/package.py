# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Update packages: a zip holding the payload, ExUpInfo.xml and ExUpHash.xml (003 §1.4.1).

ExUpHash.xml lists the SHA-256 and size of every other file and is signed with
Ed25519. The signed message is not the XML text (XML canonicalisation is a trap)
but a canonical manifest rebuilt from the parsed entries: see ``hash_manifest``.
Verification streams every member, so a package of any size verifies in
constant memory.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import os
import posixpath
import re
import stat
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union

from ansible_collections.exup.fleet.plugins.module_utils._exup import schemas
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import PackageError
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key
from ansible_collections.exup.fleet.plugins.module_utils._exup.xmlsafe import parse_untrusted, validate

if TYPE_CHECKING:
    from lxml.etree import _Element as Element

    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey

    StrPath = Union[str, os.PathLike[str]]  # Union: pylint reads module_utils as Python 3.9

#: member path -> (size, SHA-256 hex), what ExUpHash.xml lists
FileDigests = dict[str, tuple[int, str]]
#: member name -> (size, SHA-256 hex, the file's path or its bytes), what write_package stores
Sources = Mapping[str, tuple[int, str, Union[str, bytes]]]

INFO_NAME = 'ExUpInfo.xml'
HASH_NAME = 'ExUpHash.xml'
KINDS = ('linux', 'windows', 'bmc', 'offline')
SEVERITIES = ('critical', 'recommended', 'optional')
CHUNK = 1024 * 1024

#: Limits against zip bombs and resource exhaustion; generous for real firmware.
MAX_MEMBERS = 10000
MAX_TOTAL_UNCOMPRESSED = 16 * 1024**3
MAX_RATIO = 200  # uncompressed/compressed, checked for members over RATIO_FLOOR
RATIO_FLOOR = 1024 * 1024

#: Field rules shared with catalog.py and applied whatever the schema version (a newer schema skips
#: the XSD, and its PackageId "../../../../tmp/x" once became an export member outside the archive's
#: root). ASCII only, and fullmatch: Python's \d took "\u0662\u0660\u0662\u0666" and $ a trailing newline.
ID = re.compile(schemas.TOKEN_PATTERN, re.ASCII)
TEXT = re.compile(r'[^\x00-\x1f\x7f]{1,256}')
COMMAND = re.compile(r'[^\x00\n\r]{0,1024}')
DATE = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}', re.ASCII)
SCHEMA_VERSION = re.compile(r'[0-9]{1,9}', re.ASCII)
ID_RULE = '1-64 ASCII letters, digits and ._+- starting with a letter or digit'
TEXT_RULE = '1-256 characters with no control character'

#: The ten modules of 003 Table 6: id -> display name.
MODULE_KINDS = {
    'system-bios': 'System BIOS',
    'bmc-firmware': 'BMC firmware',
    'fc-controller': 'Fibre Channel controller BIOS/firmware',
    'raid-controller': 'RAID controller BIOS/firmware',
    'server-agent': 'Server agent',
    'agent-extension': 'Server agent extension',
    'update-agent': 'Update agent',
    'raid-utility': 'RAID utility',
    'bmc-configuration': 'BMC configuration',
    'sdr': 'SDR (sensor data record)',
}


@dataclasses.dataclass
class PackageInfo:
    """What ExUpInfo.xml says about a package."""

    package_id: str
    module_id: str
    module_name: str
    version: str
    release_date: str
    models: list[str]
    os: list[str]
    kind: str
    auto_update: bool
    reboot_required: bool
    downgrade_supported: bool
    uninstall_supported: bool
    install_command: str
    uninstall_command: str = ''
    severity: str = 'recommended'
    schema_version: int = schemas.PACKAGE_SCHEMA_VERSION
    #: the lowest running version this package upgrades from (UpgradeFromMin); None: any (rules/stepping.py)
    upgrade_from_min: str | None = None

    @property
    def compatible(self) -> bool:
        """False when the package uses a schema newer than this code knows (003 §2.1.4)."""
        return self.schema_version <= schemas.PACKAGE_SCHEMA_VERSION

    @property
    def multi_model(self) -> bool:
        return len(self.models) > 1

    def targets(self, model: str, os_name: str) -> bool:
        """True when this package is for ``model`` running ``os_name`` ('any' matches every OS)."""
        return model in self.models and ('any' in self.os or os_name in self.os)

    def as_dict(self) -> dict[str, Any]:
        result = dataclasses.asdict(self)
        result['compatible'] = self.compatible
        result['multi_model'] = self.multi_model
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PackageInfo:
        # the field names once, not dataclasses.fields() per call: a re-sync decodes 9,789 stored infos
        return cls(**{key: value for key, value in data.items() if key in _INFO_FIELDS})


_INFO_FIELDS = frozenset(field.name for field in dataclasses.fields(PackageInfo))


@dataclasses.dataclass
class VerifiedPackage:
    """A package that passed every check: its info, signing key and archive digest."""

    info: PackageInfo
    key_id: str
    files: FileDigests


def is_id(value: object) -> bool:
    """True for an id by the one rule of schemas.TOKEN_PATTERN (never a path, never a newline)."""
    return isinstance(value, str) and ID.fullmatch(value) is not None


def is_text(value: object) -> bool:
    """True for a display text: a model or module name."""
    return isinstance(value, str) and TEXT.fullmatch(value) is not None


def is_date(value: object) -> bool:
    """True for a real calendar date written YYYY-MM-DD in ASCII digits."""
    if not isinstance(value, str) or DATE.fullmatch(value) is None:
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_command(value: object) -> bool:
    return isinstance(value, str) and COMMAND.fullmatch(value) is not None


def check_info(info: PackageInfo) -> None:
    """Refuse (``xml_invalid``) a PackageInfo whose core fields break the rules above.

    Run for every schema version: the XSD covers version 1 only, and these fields name files and
    archive members (export's packages/<id>.zip), environment variables and rows.
    """
    rules = (
        (ID_RULE, is_id, (('PackageId', info.package_id), ('Module id', info.module_id), ('Version', info.version)) + tuple(('OS', name) for name in info.os)),
        (ID_RULE, is_id, (('UpgradeFromMin', info.upgrade_from_min),) if info.upgrade_from_min is not None else ()),
        (TEXT_RULE, is_text, (('Module name', info.module_name),) + tuple(('Model', model) for model in info.models)),
        ('a date YYYY-MM-DD', is_date, (('ReleaseDate', info.release_date),)),
        ('at most 1024 characters on one line', _is_command, (('InstallCommand', info.install_command), ('UninstallCommand', info.uninstall_command))),
    )
    for rule, valid, fields in rules:
        for name, value in fields:
            if not valid(value):
                raise PackageError('%s has %s %s, which is not %s' % (INFO_NAME, name, ascii(value)[:100], rule), code='xml_invalid', field=name)
    if info.upgrade_from_min is not None and version_key(info.upgrade_from_min) >= version_key(info.version):
        raise PackageError(
            '%s has UpgradeFromMin %s, which is not lower than its Version %s' % (INFO_NAME, info.upgrade_from_min, info.version),
            code='upgrade_from_min_invalid',
            field='UpgradeFromMin',
        )


def hash_manifest(files: FileDigests) -> bytes:
    """The exact bytes signed in ExUpHash.xml: one ``sha256 size path`` line per file, sorted by path."""
    lines = ['exup-hash-v1']
    for path in sorted(files):
        size, digest = files[path]
        lines.append('%s %d %s' % (digest, size, path))
    return ('\n'.join(lines) + '\n').encode('utf-8')


def _bool_text(value: bool) -> str:
    return 'true' if value else 'false'


def render_info_xml(info: PackageInfo) -> bytes:
    """ExUpInfo.xml for ``info`` (built with lxml so text is escaped correctly)."""
    from lxml import etree  # the vendor-side path; verification imports lxml through xmlsafe

    root = etree.Element('ExUpInfo', schemaVersion=str(info.schema_version))
    etree.SubElement(root, 'PackageId').text = info.package_id
    etree.SubElement(root, 'Module', id=info.module_id, name=info.module_name)
    etree.SubElement(root, 'Version').text = info.version
    etree.SubElement(root, 'ReleaseDate').text = info.release_date
    targets = etree.SubElement(root, 'Targets')
    for model in info.models:
        etree.SubElement(targets, 'Model').text = model
    systems = etree.SubElement(root, 'OperatingSystems')
    for os_name in info.os:
        etree.SubElement(systems, 'OS').text = os_name
    etree.SubElement(root, 'Kind').text = info.kind
    etree.SubElement(root, 'AutoUpdate').text = _bool_text(info.auto_update)
    etree.SubElement(root, 'RebootRequired').text = _bool_text(info.reboot_required)
    etree.SubElement(root, 'DowngradeSupported').text = _bool_text(info.downgrade_supported)
    etree.SubElement(root, 'UninstallSupported').text = _bool_text(info.uninstall_supported)
    etree.SubElement(root, 'InstallCommand').text = info.install_command
    if info.uninstall_command:
        etree.SubElement(root, 'UninstallCommand').text = info.uninstall_command
    etree.SubElement(root, 'Severity').text = info.severity
    if info.upgrade_from_min is not None:
        etree.SubElement(root, 'UpgradeFromMin').text = info.upgrade_from_min
    return etree.tostring(root, xml_declaration=True, encoding='UTF-8', pretty_print=True)


def render_hash_xml(files: FileDigests, signing_key: SigningKey) -> bytes:
    """ExUpHash.xml listing ``files`` (path -> (size, sha256)) signed by ``signing_key``."""
    from lxml import etree

    root = etree.Element('ExUpHash', schemaVersion='1')
    for path in sorted(files):
        size, digest = files[path]
        etree.SubElement(root, 'File', path=path, size=str(size), sha256=digest)
    signature = etree.SubElement(root, 'Signature', keyId=signing_key.key_id, algorithm='Ed25519')
    signature.text = signing_key.sign(hash_manifest(files))
    return etree.tostring(root, xml_declaration=True, encoding='UTF-8', pretty_print=True)


def file_digest(path: StrPath) -> tuple[int, str]:
    """(size, SHA-256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b''):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def build_package(payload_dir: str, info: PackageInfo, signing_key: SigningKey, out_path: str) -> str:
    """Build and sign a package zip from the files under ``payload_dir``."""
    sources: dict[str, tuple[int, str, str | bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(payload_dir):
        dirnames.sort()
        for filename in sorted(filenames):
            full = os.path.join(dirpath, filename)
            if os.path.islink(full):
                raise PackageError('payload file %s is a symbolic link; packages hold regular files only' % full, code='payload_invalid')
            rel = os.path.relpath(full, payload_dir).replace(os.sep, '/')
            if rel not in (INFO_NAME, HASH_NAME):
                sources[rel] = file_digest(full) + (full,)
    return write_package(sources, info, signing_key, out_path)


def build_package_from_bytes(payload: Mapping[str, bytes], info: PackageInfo, signing_key: SigningKey, out_path: str) -> str:
    """Build and sign a package from ``payload`` (name -> bytes); used by the synthetic feed."""
    sources = {name: (len(data), hashlib.sha256(data).hexdigest(), data) for name, data in payload.items()}
    return write_package(sources, info, signing_key, out_path)


def write_package(sources: Sources, info: PackageInfo, signing_key: SigningKey, out_path: str) -> str:
    """Write the zip: ``sources`` maps member name -> (size, sha256, path or bytes).

    Payload members over 1 MiB are stored uncompressed: firmware images rarely
    compress, and stored members verify at disk speed.
    """
    for name in sources:
        _check_member_name(name)
    files = {name: (size, digest) for name, (size, digest, _data) in sources.items()}
    info_xml = render_info_xml(info)
    files[INFO_NAME] = (len(info_xml), hashlib.sha256(info_xml).hexdigest())
    hash_xml = render_hash_xml(files, signing_key)
    tmp_path = out_path + '.tmp'
    with zipfile.ZipFile(tmp_path, 'w', allowZip64=True) as archive:
        archive.writestr(INFO_NAME, info_xml, compress_type=zipfile.ZIP_DEFLATED)
        for name in sorted(sources):
            size, _digest, data = sources[name]
            compress = zipfile.ZIP_STORED if size > RATIO_FLOOR else zipfile.ZIP_DEFLATED
            if isinstance(data, bytes):
                archive.writestr(name, data, compress_type=compress)
            else:
                archive.write(data, name, compress_type=compress)
        archive.writestr(HASH_NAME, hash_xml, compress_type=zipfile.ZIP_DEFLATED)
    os.replace(tmp_path, out_path)
    return out_path


def _check_member_name(name: str) -> None:
    """Refuse names that could escape an extraction directory or mean something special."""
    if not name or '\x00' in name or '\\' in name:
        raise PackageError('package member name %r is not allowed' % name, code='zip_path_invalid')
    if name.startswith('/') or (len(name) > 1 and name[1] == ':'):
        raise PackageError('package member %r has an absolute path' % name, code='zip_path_invalid')
    parts = name.rstrip('/').split('/')
    if any(part in ('', '.', '..') for part in parts):
        raise PackageError('package member %r has a path that escapes the package (.. or empty part)' % name, code='zip_path_invalid')
    if posixpath.normpath(name.rstrip('/')) != name.rstrip('/'):
        raise PackageError('package member %r has a path that is not normalised' % name, code='zip_path_invalid')


def _checked_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Return regular file members by name after path, link, count and bomb checks."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise PackageError('package has %d members, more than the limit of %d' % (len(infos), MAX_MEMBERS), code='zip_bomb')
    members = {}
    total = 0
    for member in infos:
        _check_member_name(member.filename)
        mode = member.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise PackageError('package member %r is a symbolic link, which is not allowed' % member.filename, code='zip_link')
        if member.is_dir():
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise PackageError('package member %r is not a regular file' % member.filename, code='zip_link')
        if member.filename in members:
            raise PackageError('package member %r appears twice' % member.filename, code='zip_path_invalid')
        if member.flag_bits & 0x1:
            raise PackageError('package member %r is encrypted' % member.filename, code='zip_path_invalid')
        total += member.file_size
        if total > MAX_TOTAL_UNCOMPRESSED:
            raise PackageError('package expands to more than %d bytes' % MAX_TOTAL_UNCOMPRESSED, code='zip_bomb')
        if member.file_size > RATIO_FLOOR and member.file_size > MAX_RATIO * max(member.compress_size, 1):
            raise PackageError(
                'package member %r expands %d times (zip bomb?)' % (member.filename, member.file_size // max(member.compress_size, 1)), code='zip_bomb'
            )
        members[member.filename] = member
    return members


def _read_small(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int, what: str) -> bytes:
    if member.file_size > limit:
        raise PackageError('%s is larger than %d bytes' % (what, limit), code='xml_invalid')
    with archive.open(member) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise PackageError('%s expands beyond its stated size' % what, code='zip_bomb')
    return data


def _stream_digest(archive: zipfile.ZipFile, member: zipfile.ZipInfo, expected_size: int) -> tuple[int, str]:
    """SHA-256 of a member, never reading more than ``expected_size`` + 1 bytes."""
    digest = hashlib.sha256()
    size = 0
    with archive.open(member) as handle:
        while True:
            chunk = handle.read(min(CHUNK, expected_size + 1 - size))
            if not chunk:
                break
            size += len(chunk)
            digest.update(chunk)
            if size > expected_size:
                break
    return size, digest.hexdigest()


def parse_hash_xml(data: bytes) -> tuple[FileDigests, str, str]:
    """Return (files, key_id, signature) from ExUpHash.xml bytes."""
    # Any: lxml's getters may return None, but the XSD requires every attribute and element read here
    root: Any = parse_untrusted(data, HASH_NAME, PackageError, schemas.EXUPHASH_XSD)
    if int(root.get('schemaVersion')) != 1:
        raise PackageError('%s uses schema version %s, which this version cannot verify' % (HASH_NAME, root.get('schemaVersion')), code='hash_schema_unknown')
    files: FileDigests = {}
    for element in root.findall('File'):
        path = element.get('path')
        if path in files:
            raise PackageError('%s lists %s twice' % (HASH_NAME, path), code='xml_invalid')
        files[path] = (int(element.get('size')), element.get('sha256'))
    signature = root.find('Signature')
    return files, signature.get('keyId'), signature.text.strip()


def _text(root: Element, tag: str, strip: bool = True) -> str:
    """The text of ``tag``; ids are taken as written (the XSD keeps their whitespace: it makes them invalid)."""
    element = root.find(tag)
    if element is None or element.text is None:
        raise PackageError('%s has no %s' % (INFO_NAME, tag), code='xml_invalid')
    return element.text.strip() if strip else element.text


def parse_info_xml(data: bytes) -> PackageInfo:
    """Return the PackageInfo of ExUpInfo.xml bytes.

    A newer schema version is read leniently (its core fields only) and comes
    back with ``compatible`` False, so the repository can store it and report
    the servers it targets as "unknown".
    """
    # Any: lxml's getters may return None; the checks below (and the XSD for known versions) rule that out
    root: Any = parse_untrusted(data, INFO_NAME, PackageError)
    # int() alone took " 99", "9_9" and Arabic-Indic digits, and a number over 1 skips the XSD.
    if SCHEMA_VERSION.fullmatch(root.get('schemaVersion', '')) is None:
        raise PackageError('%s has no valid schemaVersion' % INFO_NAME, code='xml_invalid')
    schema_version = int(root.get('schemaVersion'))
    if root.tag != 'ExUpInfo':
        raise PackageError('%s root element is %s, not ExUpInfo' % (INFO_NAME, root.tag), code='xml_invalid')
    if schema_version <= schemas.PACKAGE_SCHEMA_VERSION:
        validate(root, INFO_NAME, PackageError, schemas.EXUPINFO_XSD)

    def flag(tag: str) -> bool:
        element = root.find(tag)
        return element is not None and (element.text or '').strip() in ('true', '1')

    module = root.find('Module')
    if module is None or not module.get('id'):
        raise PackageError('%s has no Module id' % INFO_NAME, code='xml_invalid')
    models = [element.text.strip() for element in root.findall('Targets/Model') if element.text]
    os_names = [element.text for element in root.findall('OperatingSystems/OS') if element.text]
    if not models or not os_names:
        raise PackageError('%s names no target model or OS' % INFO_NAME, code='xml_invalid')
    kind = _text(root, 'Kind') if root.find('Kind') is not None else 'offline'
    severity = (root.findtext('Severity') or '').strip()
    upgrade_from_min = root.find('UpgradeFromMin')
    info = PackageInfo(
        package_id=_text(root, 'PackageId', strip=False),
        module_id=module.get('id'),
        module_name=module.get('name') or module.get('id'),
        version=_text(root, 'Version', strip=False),
        release_date=_text(root, 'ReleaseDate'),
        models=models,
        os=os_names,
        kind=kind if kind in KINDS else 'offline',
        auto_update=flag('AutoUpdate'),
        reboot_required=flag('RebootRequired'),
        downgrade_supported=flag('DowngradeSupported'),
        uninstall_supported=flag('UninstallSupported'),
        install_command=(root.findtext('InstallCommand') or '').strip(),
        uninstall_command=(root.findtext('UninstallCommand') or '').strip(),
        severity=severity if severity in SEVERITIES else 'recommended',
        schema_version=schema_version,
        upgrade_from_min=None if upgrade_from_min is None else upgrade_from_min.text or '',
    )
    check_info(info)
    return info


def verify_package(path: StrPath, keyring: KeyRing) -> VerifiedPackage:
    """Verify the package zip at ``path`` against ``keyring``; return a VerifiedPackage.

    Members are streamed, so a package of any size verifies in constant memory.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageError('%s is not a readable zip archive: %s' % (os.path.basename(path), exc), code='zip_invalid') from exc
    with archive:
        return _verify_archive(archive, keyring)


def verify_package_bytes(data: bytes | memoryview, keyring: KeyRing, name: str = 'package') -> VerifiedPackage:
    """``verify_package`` on a package already in memory (a download kept whole): the same checks, order, codes and
    messages (``name`` stands for the file's name in them), without reading the file again."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageError('%s is not a readable zip archive: %s' % (name, exc), code='zip_invalid') from exc
    with archive:
        return _verify_archive(archive, keyring)


def _verify_archive(archive: zipfile.ZipFile, keyring: KeyRing) -> VerifiedPackage:
    """The checks of an opened package zip, whatever holds its bytes.

    Order matters: structure first (cheap, refuses hostile archives before any
    decompression), then the signature over the manifest, then the file set, then
    every digest, then ExUpInfo.xml (which is itself in the manifest).
    """
    members = _checked_members(archive)
    if HASH_NAME not in members:
        raise PackageError('package has no %s: it cannot be proven to come from the vendor' % HASH_NAME, code='hash_missing')
    if INFO_NAME not in members:
        raise PackageError('package has no %s' % INFO_NAME, code='info_missing')
    files, keyid, signature = parse_hash_xml(_read_small(archive, members[HASH_NAME], 4 * 1024 * 1024, HASH_NAME))
    keyring.verify(keyid, signature, hash_manifest(files), PackageError, HASH_NAME)
    present = set(members) - {HASH_NAME}
    missing = sorted(set(files) - present)
    extra = sorted(present - set(files))
    if missing:
        raise PackageError('package is missing %s, listed in %s' % (', '.join(missing), HASH_NAME), code='file_missing', files=missing)
    if extra:
        raise PackageError('package has %s, not listed in %s' % (', '.join(extra), HASH_NAME), code='file_extra', files=extra)
    for name in sorted(files):
        _check_member_digest(archive, members[name], name, files[name])
    info = parse_info_xml(_read_small(archive, members[INFO_NAME], 1024 * 1024, INFO_NAME))
    return VerifiedPackage(info=info, key_id=keyid, files=files)


def _check_member_digest(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str, stated: tuple[int, str]) -> None:
    size, digest = stated
    if member.file_size != size:
        raise PackageError('%s has size %d, but %s states %d' % (name, member.file_size, HASH_NAME, size), code='digest_mismatch', file=name)
    try:
        actual_size, actual_digest = _stream_digest(archive, member, size)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise PackageError('%s cannot be read from the package: %s' % (name, exc), code='zip_invalid', file=name) from exc
    if actual_size != size or actual_digest != digest:
        raise PackageError('%s does not match its SHA-256 in %s: the package was altered' % (name, HASH_NAME), code='digest_mismatch', file=name)


def safe_extract(path: StrPath, keyring: KeyRing, dest_dir: StrPath) -> VerifiedPackage:
    """Verify the package, then extract it under ``dest_dir`` (which must not exist yet)."""
    verified = verify_package(path, keyring)
    os.makedirs(dest_dir, mode=0o700)
    with zipfile.ZipFile(path) as archive:
        members = _checked_members(archive)
        for name in sorted(verified.files):
            target = os.path.join(dest_dir, *name.split('/'))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            size = verified.files[name][0]
            with archive.open(members[name]) as source, open(target, 'wb') as sink:
                copied = 0
                for chunk in iter(lambda: source.read(CHUNK), b''):
                    copied += len(chunk)
                    if copied > size:
                        raise PackageError('%s grew while extracting' % name, code='zip_bomb')
                    sink.write(chunk)
    return verified
