#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_feed
short_description: Publish a signed package feed from a directory of packages, or verify a feed
version_added: 0.1.0
description:
  - The vendor side of the product, as C(exup-tool publish) and C(exup-tool verify --feed) do it (docs/user-guide.md, "The command line").
  - Runs on the host that holds the feed directory, usually the controller (C(delegate_to) V(localhost)); every path is on that host.
  - With O(state=published) every package in O(packages) is verified with the public keys of O(signing_keys) first
    (a vendor never publishes what its customers would refuse), then C(catalog.json) is signed and written, and the packages are
    copied to C(packages/) of the feed. It changes nothing when the feed already lists exactly these packages,
    signed by these keys, and the catalog expires later than O(renew_days) from now.
  - With O(state=verified) the feed is checked as a repository would check it and nothing is changed; a feed that does not verify
    is a failure with the C(error) code of the check (for example C(bad_signature), C(catalog_expired), C(feed_package_mismatch)).
author: exup.fleet contributors (@exup-fleet)
options:
  path:
    description: The feed directory (what a static web server serves).
    type: path
    required: true
  state:
    description: V(published) publishes or updates the feed; V(verified) only checks it.
    type: str
    default: published
    choices: [published, verified]
  packages:
    description: Directory of package zips (C(exup-tool build)) to publish. Required with O(state=published).
    type: path
  signing_keys:
    description: Paths of the private keys (PEM) that sign the catalog. Required with O(state=published).
    type: list
    elements: path
  key_passphrase:
    description: Passphrase of encrypted O(signing_keys) (one for all of them).
    type: str
  trusted_keys:
    description:
      - Public keys (PEM text or paths of PEM files) a feed must verify with. Required with O(state=verified).
    type: list
    elements: str
  expires_days:
    description: Days until a newly signed catalog expires.
    type: int
    default: 30
  renew_days:
    description: Sign the catalog again when it expires in less than this many days, even with no new packages.
    type: int
    default: 7
  force:
    description: Sign and write the catalog again even when nothing would change.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports what would be published (new, removed and replaced packages); writes nothing.
  diff_mode:
    support: full
    description: The package ids of the feed before and after.
requirements:
  - cryptography >= 42.0 (package and catalog signatures; checked when the module starts)
  - lxml >= 5.2 (package metadata XML; checked when the module starts)
'''

EXAMPLES = r'''
- name: Publish the packages of dist/ to the feed a web server serves
  exup.fleet.exup_feed:
    path: /srv/www/exup
    packages: dist
    signing_keys: [keys/vendor.key]
    key_passphrase: "{{ vendor_key_passphrase }}"
  delegate_to: localhost

- name: Check the feed as customers' repositories will
  exup.fleet.exup_feed:
    path: /srv/www/exup
    state: verified
    trusted_keys: [keys/vendor.pub]
  delegate_to: localhost
'''

RETURN = r'''
version:
  description: The catalog version after publishing (in check mode, the version it would get); with O(state=verified) the version that verified.
  returned: always
  type: int
  sample: 3
entries:
  description: How many packages the feed lists (after publishing).
  returned: always
  type: int
  sample: 12
new:
  description: Package ids published now that the feed did not list.
  returned: when O(state=published)
  type: list
  elements: str
  sample: [bios-1.02]
removed:
  description: Package ids the feed listed that are no longer in O(packages).
  returned: when O(state=published)
  type: list
  elements: str
  sample: []
replaced:
  description: Package ids whose package file changed (another SHA-256).
  returned: when O(state=published)
  type: list
  elements: str
  sample: []
expires:
  description: When the catalog expires (UTC, ISO 8601); null when there is no catalog yet (check mode).
  returned: always
  type: str
  sample: '2027-01-02T23:02:26Z'
feed_id:
  description: The feed's identity, kept across updates.
  returned: when O(state=verified)
  type: str
  sample: feed-22f8b077300e4d73a9a7d0528ba6488a
key_ids:
  description: Ids of the trusted keys that signed the catalog.
  returned: when O(state=verified)
  type: list
  elements: str
  sample: [65872bd2f2f0ee0f]
error:
  description:
    - Stable code of the failure (key_passphrase_required, key_passphrase_wrong, key_invalid, packages_invalid, unknown_key,
      bad_signature, catalog_expired, digest_mismatch, feed_package_missing, feed_package_mismatch, missing_library, ...).
  returned: failure
  type: str
  sample: feed_package_mismatch
package_id:
  description: The package a C(feed_package_missing) or C(feed_package_mismatch) failure is about.
  returned: failure, for a package of the feed
  type: str
  sample: bios-1.02
key_id:
  description: The key id of a signature no trusted key matches (C(unknown_key)) or that does not verify (C(bad_signature)).
  returned: failure, for a signature
  type: str
  sample: 14aa2c200d8e5e54
'''

import json
import os

from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import CATALOG_NAME, plan_publish, publish_feed, verify_feed
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import ExupModule


def _signed(path):
    """The signed part of the feed's catalog (our own output, for the diff and the result), or {} without one."""
    try:
        with open(os.path.join(path, CATALOG_NAME), 'rb') as handle:
            signed = json.load(handle)['signed']
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return signed if isinstance(signed, dict) else {}


def _listed(signed):
    return sorted(entry.get('package_id', '') for entry in signed.get('entries', []) if isinstance(entry, dict))


def published(module):
    params = module.params
    passphrase = params['key_passphrase'].encode('utf-8') if params['key_passphrase'] else None
    keys = [module.run(SigningKey.load, path, passphrase=passphrase) for path in params['signing_keys']]
    if not os.path.isdir(params['packages']):
        module.fail_json(msg='packages %s is not a directory' % params['packages'], error='packages_invalid')
    before = _listed(_signed(params['path']))
    plan = module.run(plan_publish, params['packages'], params['path'], keys, renew_days=params['renew_days'])
    changed = plan['needed'] or params['force']
    result = {key: plan[key] for key in ('new', 'removed', 'replaced', 'entries', 'version', 'expires')}
    after = sorted((set(before) - set(plan['removed'])) | set(plan['new']))
    if changed and module.check_mode:
        result['version'] = plan['version'] + 1
    elif changed:
        result['version'] = module.run(publish_feed, params['packages'], params['path'], keys, expires_days=params['expires_days'])['version']
        signed = _signed(params['path'])
        result['expires'] = signed.get('expires')
        after = _listed(signed)
    module.exit_json(changed=changed, diff={'before': {'packages': before}, 'after': {'packages': after}}, **result)


def verified(module):
    params = module.params
    keyring = module.run(KeyRing.from_pem_list, params['trusted_keys'])
    found = module.run(verify_feed, params['path'], keyring)
    module.exit_json(changed=False, **{key: found[key] for key in ('version', 'entries', 'expires', 'feed_id', 'key_ids')})


def main():
    argument_spec = {
        'path': {'type': 'path', 'required': True},
        'state': {'type': 'str', 'default': 'published', 'choices': ['published', 'verified']},
        'packages': {'type': 'path'},
        'signing_keys': {'type': 'list', 'elements': 'path', 'no_log': False},
        'key_passphrase': {'type': 'str', 'no_log': True},
        'trusted_keys': {'type': 'list', 'elements': 'str', 'no_log': False},
        'expires_days': {'type': 'int', 'default': 30},
        'renew_days': {'type': 'int', 'default': 7},
        'force': {'type': 'bool', 'default': False},
    }
    module = ExupModule(
        argument_spec,
        supports_check_mode=True,
        required_if=[('state', 'published', ('packages', 'signing_keys')), ('state', 'verified', ('trusted_keys',))],
    )
    if module.params['state'] == 'verified':
        verified(module)
    else:
        published(module)


if __name__ == '__main__':
    main()
