# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helper of scripts/demo.sh (not part of the collection's interface).

    demo_helper.py prepare --feed DIR --key KEY --servers-in FILE --vars-out FILE
        Plays the attacker and the operator on a synthetic feed:
        - alters the payload of the newest System BIOS package a managed server
          needs, after the vendor signed it, and re-signs only the catalog (so the
          download matches the catalog and the package's own signature must catch it);
        - gives one server a "previous" BIOS version outside the newest three;
        - writes the playbook's variables: the servers, the package files to add by
          hand (one per result of 003 Table 14) and the packages to delete.
    demo_helper.py summary --report FILE
        Prints a readable summary of the playbook's report.
    demo_helper.py compliance --before DIR --after DIR
        Prints where the two compliance reports of scripts/demo_lab.sh are, their counts per
        verdict and each server's verdict before -> after; exit 1 when the second report is not
        more compliant than the first.

Run it with the collection on PYTHONPATH (scripts/demo.sh does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import HASH_NAME, INFO_NAME, file_digest
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import CATALOG_NAME, write_catalog
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key

MIB = 1024.0 * 1024.0


def _bios_versions(entries, model):
    """System BIOS catalog entries for ``model``, newest first."""
    found = [entry for entry in entries if entry['module_id'] == 'system-bios' and model in entry['models']]
    return sorted(found, key=lambda entry: version_key(entry['version']), reverse=True)


def tamper_package(path):
    """Flip one byte of the payload inside the zip, keeping ExUpInfo.xml and ExUpHash.xml as signed."""
    tmp = path + '.tmp'
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp, 'w') as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename not in (INFO_NAME, HASH_NAME) and member.filename.startswith('payload/'):
                data = bytes([data[0] ^ 0xFF]) + data[1:]
                altered = member.filename
            target.writestr(member, data)
    os.replace(tmp, path)
    return altered


def cmd_prepare(args):
    feed = args.feed
    with open(os.path.join(feed, CATALOG_NAME), 'rb') as handle:
        entries = json.load(handle)['signed']['entries']
    with open(args.servers_in, encoding='utf-8') as handle:
        servers = json.load(handle)

    def path_of(entry):
        return os.path.join(feed, entry['url'])

    # The tampered package: the newest BIOS of the first server's model (inside its newest-3 window).
    victim = _bios_versions(entries, servers[0]['model'])[0]
    altered = tamper_package(path_of(victim))
    victim['size'] = os.path.getsize(path_of(victim))
    victim['sha256'] = file_digest(path_of(victim))[1]
    version = write_catalog(feed, entries, [SigningKey.load(args.key)])

    # A previous generation: a server whose model has at least four BIOS versions ran the fourth
    # newest before its last apply. A sync never downloads it (only the newest three), but added
    # by hand it is kept beside them (003 §2.2.2).
    add = []
    for server in servers[1:]:
        versions = _bios_versions(entries, server['model'])
        if len(versions) >= 5 and server['model'] != servers[0]['model']:
            server['modules'] = {'system-bios': {'current': versions[0]['version'], 'previous': versions[3]['version']}}
            add = [
                path_of(versions[3]),  # added: the previous generation of this server
                path_of(versions[4]),  # warning: too old, generation management would remove it at once
                path_of(versions[0]),  # warning: the sync already downloaded it
                path_of(victim),  # error: the altered package
            ]
            break
    # Deleted by hand: the newest SDR of the third server's model (recorded as a tombstone).
    sdr = [entry for entry in entries if entry['module_id'] == 'sdr' and servers[2]['model'] in entry['models']]
    if not add or not sdr:
        raise SystemExit('demo_helper.py: the feed is too small for the demo (use 200 entries or more, and 3 servers or more)')
    delete = [max(sdr, key=lambda entry: version_key(entry['version']))['package_id'], 'no-such-package-1.0']
    demo_vars = {'exup_demo_servers': servers, 'exup_demo_add': add, 'exup_demo_delete': delete}
    with open(args.vars_out, 'w', encoding='utf-8') as handle:
        json.dump(demo_vars, handle, indent=1)
    json.dump({'tampered': victim['package_id'], 'altered_file': altered, 'catalog_version': version}, sys.stdout, indent=2)
    sys.stdout.write('\n')
    return 0


def _size(count_bytes):
    return '%.1f MiB' % (count_bytes / MIB)


def _print_refused(refused):
    for item in refused:
        print('      - %s: [%s] %s' % (item['package_id'], item['code'], item['reason']))


def _versions(packages, ids):
    """``version[generation]`` of each package, newest first; the kind tells apart a version built for several OS sets."""
    counts = {}
    for package_id in ids:
        counts[packages[package_id]['version']] = counts.get(packages[package_id]['version'], 0) + 1
    shown = []
    for package_id in ids:
        package = packages[package_id]
        mark = 'P' if package['pinned'] else ('*' if package['previous_generation_only'] else str(package['generation']))
        kind = '/' + package['kind'] if counts[package['version']] > 1 else ''
        shown.append('%s%s[%s]' % (package['version'], kind, mark))
    return '  '.join(shown)


def cmd_summary(args):
    with open(args.report, encoding='utf-8') as handle:
        report = json.load(handle)
    check, first, second, info = report['check'], report['first'], report['second'], report['info']
    servers = report['servers']
    packages = {package['package_id']: package for package in info['packages']}
    catalog = first['catalog']

    print('')
    print('=' * 78)
    print('exup.fleet demo: summary')
    print('=' * 78)
    print('Feed     %s' % report['feed_url'])
    print(
        '         catalog version %s, %s entries, signed by key %s, expires %s'
        % (catalog['version'], catalog.get('entries_total'), ', '.join(catalog.get('key_ids', [])), catalog['expires'])
    )
    print(
        'Servers  %d managed servers, %d models, registered by manager "%s"'
        % (len(servers), len({server['model'] for server in servers}), report['manager_id'])
    )
    print('')
    print('1. Check mode: would download %d packages (%s); nothing was written.' % (len(check['added']), _size(sum(item['size'] for item in check['added']))))
    print(
        '2. Sync: downloaded and verified %d packages (%s), removed %d, refused %d:'
        % (len(first['added']), _size(first['bytes_downloaded']), len(first['removed']), len(first['refused']))
    )
    _print_refused(first['refused'])
    skipped = catalog.get('entries_total', 0) - len(first['added']) - len(first['refused'])
    print('   The other %d feed entries target models/OSes no server has, or are older than the newest 3 generations.' % skipped)
    print('')
    print('3. Added by hand, mode "needed" (results of 003 Table 14):')
    for item in report['add']['results']:
        print('      %-48s %-24s %s' % (item.get('package_id') or item['file'], item['result'], item['msg']))
    print('   Deleted by hand (results of 003 Table 16):')
    for item in report['delete']['results']:
        print('      %-48s %-24s %s' % (item['package_id'], item['result'], item['msg']))
    print('')
    print('4. The repository keeps %d packages' % len(packages))
    print('   by component (003 Fig. 10):')
    for module_id, ids in sorted(info['by_component'].items()):
        print('      %-18s %3d packages' % (module_id, len(ids)))
    print('   by model (003 Fig. 11): version[generation], 0 = newest, * = kept as a server\'s previous generation')
    for model, modules in sorted(info['by_model'].items()):
        print('      %s' % model)
        for module_id, ids in sorted(modules.items()):
            print('         %-18s %s' % (module_id, _versions(packages, ids)))
    manual = sorted(package['package_id'] for package in packages.values() if not package['auto_update'])
    print('   not auto-update (saved, applied by hand): %s' % (', '.join(manual) or 'none'))
    print(
        '   multi-model packages: %d; deletion history (tombstones): %s'
        % (sum(1 for package in packages.values() if package['multi_model']), ', '.join(item['package_id'] for item in info['tombstones']) or 'none')
    )
    print('')
    print('5. Event log (003 Tables 18-19): %d events' % len(info['events']))
    counts = {}
    for event in info['events']:
        counts[event['message'].split(' (')[0]] = counts.get(event['message'].split(' (')[0], 0) + 1
    for message, count in sorted(counts.items()):
        print('      %4d x %s' % (count, message))
    print('   error events:')
    for event in reversed(info['events']):
        if event['level'] == 'error':
            print('      %s %s' % (event['time'], event['message']))
    print('')
    print(
        '6. Second sync: feed %s, %d new entries; downloaded %d packages (%s), removed %d;'
        % (
            'unchanged (HTTP 304 Not Modified)' if second['feed_unchanged'] else 'changed',
            second['catalog'].get('entries_new', 0),
            len(second['added']),
            _size(second['bytes_downloaded']),
            len(second['removed']),
        )
    )
    print('   not downloaded again because deleted by hand: %s' % (', '.join(second['skipped_tombstoned']) or 'none'))
    print(
        '   still refused, not downloaded again while the feed offers the same bytes: %s'
        % (
            ', '.join(
                '%s (%s since %s)' % (item['package_id'], item['code'], item.get('refused_at', 'now')) for item in second['refused'] if item.get('repeated')
            )
            or 'none'
        )
    )
    print('')
    return 0


def _compliance(folder):
    with open(os.path.join(folder, 'compliance.json'), encoding='utf-8') as handle:
        return json.load(handle)


def _counts(summary):
    return 'pass %d, fail %d, unknown %d of %d server(s): %.1f%% compliant' % (
        summary['pass'],
        summary['fail'],
        summary['unknown'],
        summary['servers'],
        summary['compliance_percent'],
    )


def cmd_compliance(args):
    before, after = _compliance(args.before), _compliance(args.after)
    print('')
    print('== Compliance against the baseline (playbooks/scan.yml, scan_report_dir)')
    for name, folder, report in (('before the apply', args.before, before), ('after the apply ', args.after, after)):
        print(' %s: %s' % (name, _counts(report['summary'])))
        print('   %s/compliance.html, compliance.json, compliance.xml (JUnit)' % folder)
    verdicts = {row['host']: [row['verdict'], ''] for row in before['servers']}
    for row in after['servers']:
        verdicts.setdefault(row['host'], ['', ''])[1] = row['verdict']
    print(' per server: ' + ', '.join('%s %s -> %s' % (host, old or '-', new or '-') for host, (old, new) in sorted(verdicts.items())))
    modules = {}
    for row in after['servers']:
        for module in row['modules']:
            modules.setdefault(module['verdict'], []).append(module['module'])
    print(' modules after: ' + ', '.join('%s %d' % (verdict, len(names)) for verdict, names in sorted(modules.items())))
    if after['summary']['compliance_percent'] <= before['summary']['compliance_percent']:
        print('exup demo: the apply did not make the servers more compliant', file=sys.stderr)
        return 1
    print('')
    return 0


def main(argv=None):
    top = argparse.ArgumentParser(prog='demo_helper.py', description=__doc__.split('\n', 1)[0])
    commands = top.add_subparsers(dest='command', required=True)
    prepare = commands.add_parser('prepare')
    prepare.add_argument('--feed', required=True)
    prepare.add_argument('--key', required=True)
    prepare.add_argument('--servers-in', required=True)
    prepare.add_argument('--vars-out', required=True)
    prepare.set_defaults(func=cmd_prepare)
    summary = commands.add_parser('summary')
    summary.add_argument('--report', required=True)
    summary.set_defaults(func=cmd_summary)
    compliance = commands.add_parser('compliance')
    compliance.add_argument('--before', required=True)
    compliance.add_argument('--after', required=True)
    compliance.set_defaults(func=cmd_compliance)
    args = top.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
