# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``exup-tool``: the vendor and operator command line, on the same core as the modules.

From an installed collection (only requirements.txt installed, the collections path on PYTHONPATH)::

    python3 -m ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.cli <command>

``wrapper --out FILE`` writes a short ``exup-tool`` script that runs exactly that; in the git
checkout ``scripts/exup-tool`` does. Commands: keygen, build, verify, publish, synth, schema, wrapper.
It prints JSON on stdout; a failure prints ``exup-tool: error [<code>]: <message>`` on stderr and
exits non-zero (1; 2 for a usage error; 130 when interrupted), never with a traceback.
Key passphrases come from ``EXUP_KEY_PASSPHRASE`` or ``--passphrase-file``, never from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ansible_collections.exup.fleet.plugins.module_utils._exup import schemas
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import (
    KINDS,
    MODULE_KINDS,
    SEVERITIES,
    PackageInfo,
    build_package,
    check_info,
    verify_package,
)
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import publish_feed, synthesize_feed, synthetic_servers, verify_feed

PROG = 'exup-tool'
#: the module to run with ``python -m``
ENTRY_MODULE = 'ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.cli'
#: the environment variable a key passphrase comes from (when no --passphrase-file is given)
PASSPHRASE_ENV = 'EXUP_KEY_PASSPHRASE'
MAX_PASSPHRASE_BYTES = 4096
#: set to 1 to get the traceback of an unexpected error (a bug) instead of its one-line report
DEBUG_ENV = 'EXUP_DEBUG'


class UsageError(ExupError):
    """The command line itself is wrong (exit code 2, like argparse)."""

    code = 'usage'


def read_passphrase(args: argparse.Namespace) -> bytes | None:
    """The key passphrase: ``--passphrase-file`` (``-`` for standard input) or $EXUP_KEY_PASSPHRASE, else None.

    One trailing newline is dropped (``echo secret > file``); an empty passphrase is refused.
    """
    path = getattr(args, 'passphrase_file', None)
    if path:
        try:
            if path == '-':
                data = sys.stdin.buffer.read(MAX_PASSPHRASE_BYTES + 1)
            else:
                with open(path, 'rb') as handle:
                    data = handle.read(MAX_PASSPHRASE_BYTES + 1)
        except OSError as exc:
            raise ExupError('cannot read the passphrase file %s: %s' % (path, exc.strerror or exc), code='passphrase_unreadable') from None
        if len(data) > MAX_PASSPHRASE_BYTES:
            raise ExupError('the passphrase file %s is larger than %d bytes' % (path, MAX_PASSPHRASE_BYTES), code='passphrase_invalid')
        source = path
    elif os.environ.get(PASSPHRASE_ENV) is not None:
        data = os.environ[PASSPHRASE_ENV].encode('utf-8', 'surrogateescape')
        source = '$' + PASSPHRASE_ENV
    else:
        return None
    if data.endswith(b'\n'):
        data = data[:-2] if data.endswith(b'\r\n') else data[:-1]
    if not data:
        raise ExupError('the passphrase from %s is empty' % source, code='passphrase_invalid')
    return data


def load_key(path: str, args: argparse.Namespace) -> SigningKey:
    """A private key, decrypted with the passphrase of ``args`` when it is encrypted."""
    return SigningKey.load(path, passphrase=read_passphrase(args))


def collections_dir() -> str:
    """The directory that holds ansible_collections/exup/fleet this module runs from (PYTHONPATH for a wrapper)."""
    here = os.path.abspath(__file__)  # not realpath: build/collections links to the checkout
    top = here
    for _level in range(len(ENTRY_MODULE.split('.'))):
        top = os.path.dirname(top)
    if not os.path.isdir(os.path.join(top, 'ansible_collections', 'exup', 'fleet')):
        raise ExupError('%s is not inside a collections path (ansible_collections/exup/fleet)' % here, code='not_installed')
    return top


def cmd_keygen(args: argparse.Namespace) -> dict[str, Any]:
    os.makedirs(args.out, exist_ok=True)
    key = SigningKey.generate()
    private_path = os.path.join(args.out, args.name + '.key')
    public_path = os.path.join(args.out, args.name + '.pub')
    if os.path.exists(private_path) and not args.force:
        raise ExupError('%s exists; pass --force to replace it' % private_path, code='exists')
    passphrase = read_passphrase(args)
    key.save(private_path, public_path, passphrase=passphrase)
    return {'private_key': private_path, 'public_key': public_path, 'key_id': key.key_id, 'encrypted': passphrase is not None}


def cmd_build(args: argparse.Namespace) -> dict[str, Any]:
    if args.info:
        with open(args.info, encoding='utf-8') as handle:
            try:
                data = json.load(handle)
            except ValueError as exc:
                raise ExupError('%s is not JSON: %s' % (args.info, exc), code='info_invalid') from None
        if not isinstance(data, dict):
            raise ExupError('%s must hold a JSON object of PackageInfo fields' % args.info, code='info_invalid')
        try:
            info = PackageInfo.from_dict(data)
        except TypeError as exc:
            raise ExupError('%s is not a complete PackageInfo: %s' % (args.info, exc), code='info_invalid') from None
    else:
        missing = [name for name in ('package_id', 'module', 'version', 'release_date', 'model', 'os') if not getattr(args, name)]
        if missing:
            raise ExupError('build needs --info FILE or --%s' % ', --'.join(name.replace('_', '-') for name in missing), code='argument_invalid')
        info = PackageInfo(
            package_id=args.package_id,
            module_id=args.module,
            module_name=args.module_name or MODULE_KINDS.get(args.module, args.module),
            version=args.version,
            release_date=args.release_date,
            models=args.model,
            os=args.os,
            kind=args.kind,
            auto_update=not args.no_auto_update,
            reboot_required=args.reboot_required,
            downgrade_supported=args.downgrade_supported,
            uninstall_supported=args.uninstall_supported,
            install_command=args.install_command,
            uninstall_command=args.uninstall_command or '',
            severity=args.severity,
            upgrade_from_min=args.upgrade_from_min,
        )
    if not os.path.isdir(args.payload):
        raise ExupError('payload %s is not a directory' % args.payload, code='payload_invalid')
    check_info(info)  # UpgradeFromMin lower than Version, and the id rules, before anything is signed
    key = load_key(args.key, args)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    build_package(args.payload, info, key, args.out)
    return {'package': args.out, 'package_id': info.package_id}


def cmd_verify(args: argparse.Namespace) -> dict[str, Any]:
    keyring = KeyRing.from_pem_list(args.trusted_key)
    if (args.package is None) == (args.feed is None):
        raise UsageError('verify takes a PACKAGE or --feed DIR (one of them)')
    if args.feed is not None:
        return verify_feed(args.feed, keyring)
    verified = verify_package(args.package, keyring)
    return {'package': args.package, 'key_id': verified.key_id, 'info': verified.info.as_dict(), 'files': len(verified.files)}


def cmd_publish(args: argparse.Namespace) -> dict[str, Any]:
    if not os.path.isdir(args.packages):
        raise ExupError('packages %s is not a directory' % args.packages, code='packages_invalid')
    keys = [load_key(path, args) for path in args.key]
    return publish_feed(args.packages, args.feed, keys, version=args.version, expires_days=args.expires_days)


def cmd_synth(args: argparse.Namespace) -> dict[str, Any]:
    count, models = synthesize_feed(
        args.feed, load_key(args.key, args), entries=args.entries, versions_per_module=args.versions, avg_size=args.avg_size, seed=args.seed
    )
    result: dict[str, Any] = {'feed': args.feed, 'entries': count, 'models': len(models)}
    if args.servers:
        servers = synthetic_servers(models, args.servers, seed=args.seed)
        with open(args.servers_out, 'w', encoding='utf-8') as handle:
            json.dump(servers, handle, indent=1)
        result['servers_file'] = args.servers_out
    return result


def cmd_schema(args: argparse.Namespace) -> dict[str, Any]:
    os.makedirs(args.out, exist_ok=True)
    written: list[str] = []
    for name, text in (('ExUpInfo.xsd', schemas.EXUPINFO_XSD), ('ExUpHash.xsd', schemas.EXUPHASH_XSD)):
        path = os.path.join(args.out, name)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(text)
        written.append(path)
    return {'written': written}


def wrapper_script(python: str, pythonpath: str) -> str:
    """A POSIX shell script that runs this command line with ``python`` and ``pythonpath`` in front of PYTHONPATH."""
    return (
        '#!/bin/sh\n'
        '# exup-tool: written by "%s wrapper"; runs the exup.fleet command line of an installed collection.\n'
        'PYTHONPATH=%s${PYTHONPATH:+:$PYTHONPATH}\n'
        'export PYTHONPATH\n'
        'exec %s -m %s "$@"\n' % (PROG, shlex.quote(pythonpath), shlex.quote(python), ENTRY_MODULE)
    )


def cmd_wrapper(args: argparse.Namespace) -> dict[str, Any]:
    if os.path.lexists(args.out) and not args.force:
        raise ExupError('%s exists; pass --force to replace it' % args.out, code='exists')
    pythonpath = collections_dir()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(wrapper_script(args.python or sys.executable, pythonpath))
    os.chmod(tmp, 0o755)
    os.replace(tmp, args.out)
    return {'wrapper': args.out, 'python': args.python or sys.executable, 'collections_path': pythonpath}


def _add_passphrase_file(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument(
        '--passphrase-file',
        metavar='FILE',
        help='file holding the passphrase %s (- for standard input); default: $%s, else none' % (what, PASSPHRASE_ENV),
    )


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in the tool's one error format."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog=PROG, description=(__doc__ or PROG).split('\n', 1)[0])
    commands = top.add_subparsers(dest='command', required=True)

    keygen = commands.add_parser('keygen', help='create an Ed25519 signing key pair')
    keygen.add_argument('--out', required=True, help='directory for NAME.key and NAME.pub')
    keygen.add_argument('--name', default='vendor')
    keygen.add_argument('--force', action='store_true')
    _add_passphrase_file(keygen, 'to encrypt the private key with')
    keygen.set_defaults(func=cmd_keygen)

    build = commands.add_parser('build', help='build and sign a package from a payload directory')
    build.add_argument('--payload', required=True)
    build.add_argument('--key', required=True, help='private key (PEM)')
    build.add_argument('--out', required=True, help='package zip to write')
    build.add_argument('--info', help='JSON file with the PackageInfo fields (instead of the flags below)')
    build.add_argument('--package-id')
    build.add_argument('--module', choices=sorted(MODULE_KINDS))
    build.add_argument('--module-name')
    build.add_argument('--version')
    build.add_argument('--release-date', help='YYYY-MM-DD')
    build.add_argument('--model', action='append', help='target model (repeat for a multi-model package)')
    build.add_argument('--os', action='append', help="target OS (repeat), or 'any'")
    build.add_argument('--kind', choices=KINDS, default='linux')
    build.add_argument('--no-auto-update', action='store_true')
    build.add_argument('--reboot-required', action='store_true')
    build.add_argument('--downgrade-supported', action='store_true')
    build.add_argument('--uninstall-supported', action='store_true')
    build.add_argument('--install-command', default='./install.sh')
    build.add_argument('--uninstall-command')
    build.add_argument('--severity', choices=SEVERITIES, default='recommended')
    build.add_argument('--upgrade-from-min', help='the lowest running version this package upgrades from (UpgradeFromMin)')
    _add_passphrase_file(build, 'of an encrypted key')
    build.set_defaults(func=cmd_build)

    verify = commands.add_parser('verify', help='verify a package, or a whole feed directory, and print what it holds')
    verify.add_argument('package', nargs='?', help='package zip to verify')
    verify.add_argument('--feed', help='feed directory: verify catalog.json and every package it lists')
    verify.add_argument('--trusted-key', action='append', required=True)
    verify.set_defaults(func=cmd_verify)

    publish = commands.add_parser('publish', help='publish or update a signed feed from a directory of packages')
    publish.add_argument('--packages', required=True)
    publish.add_argument('--feed', required=True, help='feed directory to serve over HTTP')
    publish.add_argument('--key', action='append', required=True)
    publish.add_argument('--version', type=int, help='catalog version (default: previous + 1)')
    publish.add_argument('--expires-days', type=int, default=30)
    _add_passphrase_file(publish, 'of encrypted keys')
    publish.set_defaults(func=cmd_publish)

    synth = commands.add_parser('synth', help='generate a realistic synthetic signed feed')
    synth.add_argument('--feed', required=True)
    synth.add_argument('--key', required=True)
    synth.add_argument('--entries', type=int, default=200)
    synth.add_argument('--versions', type=int, default=6, help='versions per module')
    synth.add_argument('--avg-size', type=int, default=64 * 1024, help='average payload bytes')
    synth.add_argument('--seed', type=int, default=1)
    synth.add_argument('--servers', type=int, default=0, help='also write this many managed servers')
    synth.add_argument('--servers-out', default='servers.json')
    _add_passphrase_file(synth, 'of an encrypted key')
    synth.set_defaults(func=cmd_synth)

    schema = commands.add_parser('schema', help='write the package XSDs')
    schema.add_argument('--out', required=True)
    schema.set_defaults(func=cmd_schema)

    wrapper = commands.add_parser('wrapper', help='write an exup-tool shell script that runs this command line')
    wrapper.add_argument('--out', required=True, help='script to write, e.g. ~/.local/bin/exup-tool')
    wrapper.add_argument('--python', help='Python to run it with (default: this one)')
    wrapper.add_argument('--force', action='store_true')
    wrapper.set_defaults(func=cmd_wrapper)
    return top


def _fail(code: str, msg: str, status: int = 1) -> int:
    sys.stderr.write('%s: error [%s]: %s\n' % (PROG, code, msg))
    return status


def _os_error(exc: OSError) -> tuple[str, str]:
    """(code, message) of a file system error: which path, what went wrong."""
    if isinstance(exc, FileNotFoundError):
        code = 'not_found'
    elif isinstance(exc, PermissionError):
        code = 'permission_denied'
    elif isinstance(exc, (IsADirectoryError, NotADirectoryError, FileExistsError)):
        code = 'path_invalid'
    else:
        code = 'io_error'
    where = ' '.join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    return code, '%s%s' % (where + ': ' if where else '', exc.strerror or exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code (0 done, 1 failed, 2 usage, 130 interrupted)."""
    try:
        args = parser().parse_args(argv)
        result = args.func(args)
    except UsageError as exc:
        return _fail(exc.code, exc.msg, 2)
    except ExupError as exc:
        return _fail(exc.code, exc.msg)
    except OSError as exc:
        return _fail(*_os_error(exc))
    except KeyboardInterrupt:
        return _fail('interrupted', 'interrupted', 130)
    except Exception as exc:  # pylint: disable=broad-exception-caught  # a bug: one line, not a traceback (EXUP_DEBUG=1 shows it)
        if os.environ.get(DEBUG_ENV) == '1':
            raise
        return _fail('internal_error', '%s: %s (set %s=1 for the traceback)' % (type(exc).__name__, exc, DEBUG_ENV))
    try:
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + '\n')
        sys.stdout.flush()
    except BrokenPipeError:
        return 0
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
