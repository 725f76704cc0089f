# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``exup-tool``: the vendor and operator command line, on the same core as the modules.

Run it as ``scripts/exup-tool <command>``. Commands: keygen, build, verify,
publish, synth, servers, schema.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ansible_collections.exup.fleet.plugins.module_utils._exup import schemas
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import KINDS, MODULE_KINDS, SEVERITIES, PackageInfo, build_package, verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import publish_feed, synthesize_feed, synthetic_servers


def cmd_keygen(args: argparse.Namespace) -> dict[str, Any]:
    os.makedirs(args.out, exist_ok=True)
    key = SigningKey.generate()
    private_path = os.path.join(args.out, args.name + '.key')
    public_path = os.path.join(args.out, args.name + '.pub')
    if os.path.exists(private_path) and not args.force:
        raise ExupError('%s exists; pass --force to replace it' % private_path, code='exists')
    key.save(private_path, public_path)
    return {'private_key': private_path, 'public_key': public_path, 'key_id': key.key_id}


def cmd_build(args: argparse.Namespace) -> dict[str, Any]:
    if args.info:
        with open(args.info, encoding='utf-8') as handle:
            info = PackageInfo.from_dict(json.load(handle))
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
        )
    build_package(args.payload, info, SigningKey.load(args.key), args.out)
    return {'package': args.out, 'package_id': info.package_id}


def cmd_verify(args: argparse.Namespace) -> dict[str, Any]:
    verified = verify_package(args.package, KeyRing.from_pem_list(args.trusted_key))
    return {'package': args.package, 'key_id': verified.key_id, 'info': verified.info.as_dict(), 'files': len(verified.files)}


def cmd_publish(args: argparse.Namespace) -> dict[str, Any]:
    return publish_feed(args.packages, args.feed, [SigningKey.load(path) for path in args.key], version=args.version, expires_days=args.expires_days)


def cmd_synth(args: argparse.Namespace) -> dict[str, Any]:
    count, models = synthesize_feed(
        args.feed, SigningKey.load(args.key), entries=args.entries, versions_per_module=args.versions, avg_size=args.avg_size, seed=args.seed
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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog='exup-tool', description=__doc__.split('\n', 1)[0])
    commands = top.add_subparsers(dest='command', required=True)

    keygen = commands.add_parser('keygen', help='create an Ed25519 signing key pair')
    keygen.add_argument('--out', required=True, help='directory for NAME.key and NAME.pub')
    keygen.add_argument('--name', default='vendor')
    keygen.add_argument('--force', action='store_true')
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
    build.set_defaults(func=cmd_build)

    verify = commands.add_parser('verify', help='verify a package and print what it holds')
    verify.add_argument('package')
    verify.add_argument('--trusted-key', action='append', required=True)
    verify.set_defaults(func=cmd_verify)

    publish = commands.add_parser('publish', help='publish or update a signed feed from a directory of packages')
    publish.add_argument('--packages', required=True)
    publish.add_argument('--feed', required=True, help='feed directory to serve over HTTP')
    publish.add_argument('--key', action='append', required=True)
    publish.add_argument('--version', type=int, help='catalog version (default: previous + 1)')
    publish.add_argument('--expires-days', type=int, default=30)
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
    synth.set_defaults(func=cmd_synth)

    schema = commands.add_parser('schema', help='write the package XSDs')
    schema.add_argument('--out', required=True)
    schema.set_defaults(func=cmd_schema)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = args.func(args)
    except ExupError as exc:
        sys.stderr.write('exup-tool: error [%s]: %s\n' % (exc.code, exc.msg))
        return 1
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
