#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_repo_sync
short_description: Sync an update package repository from a signed vendor feed
version_added: 0.1.0
description:
  - Runs on the repository host. Fetches the signed catalog of the vendor's distribution server (003 §2.2.1),
    sending the time of the last access and using a conditional request, so an unchanged feed costs one small request.
  - Records this manager's presence and the servers it manages (their model, OS and module versions) as its needs.
  - Downloads, in parallel, only the packages those servers need within the generations kept, resuming interrupted
    downloads and never reading past the size the catalog states; verifies each package (signature, every file digest)
    before it enters the repository.
  - Then applies generation management (003 §2.2.2), keeping at most 3 generations per model, OS and module plus
    the previous generation a server ran when the repository holds it (a sync does not download it), and never
    downloads a package that was deleted by hand (tombstoned).
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.repository
  - exup.fleet.repository.remote
  - exup.fleet.repository.HTTP
options:
  feed_url:
    description:
      - URL of the feed's signed catalog, for example V(https://updates.example.com/exup/catalog.json).
      - Required for a local O(repository). A remote repository (a service URL) downloads from the feed its own
        configuration names (003 §3.4.2, the repository's side downloads); O(feed_url), O(trusted_keys) and the proxy
        options are then not used.
    type: str
  trusted_keys:
    description:
      - Ed25519 public keys (PEM text, or paths of PEM files on the repository host) trusted to sign packages and catalogs.
      - Add a new vendor key here before the vendor signs with it, so keys can rotate.
      - Required for a local O(repository); a remote repository verifies with the keys its configuration trusts.
    type: list
    elements: str
  upstream:
    description:
      - What O(feed_url) names. V(vendor) (the default) is the vendor's feed, its signed catalog.
      - V(repository) is an upstream repository service, for example V(https://dmz.example.com:8080), as a repository in
        an inner network syncs from one in a DMZ that alone reaches the vendor (003 §1.3, Fig. 5). The sync first announces
        this repository's active servers to the upstream (as one manager of it) and has the upstream download what they need;
        then it syncs from the upstream's feed view (the vendor's signed catalog exactly as the upstream verified it) and
        verifies everything again with O(trusted_keys) (the vendor's signature, rollback, expiry, and every package). An
        upstream that cannot download (its download fails, or it has no feed) is an C(upstream_download_failed) event, and
        the sync goes on with what the upstream holds. RV(upstream) says what the upstream did.
      - The upstream's user (O(feed_username)) must have its C(admin) role to announce needs and download; its C(read)
        role reads the feed view only, and the sync then fails with C(forbidden).
      - Only for a local O(repository).
    type: str
    choices: [vendor, repository]
    default: vendor
  feed_username:
    description:
      - User name for HTTP Basic authentication to the origin (scheme, host and port) of O(feed_url), and only there;
        the upstream repository service's user with O(upstream=repository).
    type: str
  feed_password:
    description: Password of O(feed_username). Never logged nor returned.
    type: str
  servers:
    description:
      - The servers this manager manages. Omit to keep what this manager registered before.
      - An empty list says this manager manages no server.
      - An entry with another key, a missing or empty O(servers[].name), O(servers[].model) or O(servers[].os), or O(servers[].modules)
        that is not a mapping fails the task with C(error=server_invalid) before anything is fetched or written.
    type: list
    elements: dict
    suboptions:
      name:
        description: Server name.
        type: str
        required: true
      model:
        description: Model name as update packages name it.
        type: str
        required: true
      os:
        description: OS identifier as update packages name it (for example V(rhel9), V(win2022)).
        type: str
        required: true
      modules:
        description:
          - Module id to its versions, either a version string (the current one) or a dict with C(current) and C(previous).
          - The previous version's package is kept as the previous generation (003 §2.2.2).
        type: dict
        default: {}
  workers:
    description: Parallel downloads.
    type: int
    default: 4
  sync_timeout:
    description:
      - Seconds the whole sync may take, the catalog and every download included. Each request ends by then too,
        however slowly its server sends, and a server's C(Retry-After) is honoured for at most 30 seconds and never past it.
      - When it is reached the task fails with C(sync_timeout). The packages already verified stay indexed, partial
        downloads stay in C(tmp/) and resume at the next sync, and nothing is removed by generation management in that run.
      - O(timeout) bounds each connection attempt and each read, not a whole request.
    type: int
    default: 3600
  accept_catalog_version_reset:
    description:
      - The operator's way out when the catalog's version rules lock the repository out of its vendor's real catalogs.
        Accept the catalog the feed serves now although its version is lower than the one accepted before from this feed
        (C(catalog_rollback)) or more than 2**32 above it (C(catalog_version_jump)). The sync logs a C(catalog_version_reset)
        event, and the rules apply again from the accepted version on.
      - Turn it on for one run after checking with the vendor; left on, it disables rollback protection.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Fetches and verifies the catalog, reports what would be downloaded and removed, changes nothing.
  diff_mode:
    support: full
    description: The diff lists the ids of the packages added and removed.
notes:
  - Refused packages (tampered, unknown key, too long, truncated) are listed in RV(refused) with the reason and leave
    an error event; they do not fail the task, the catalog problems (bad signature, rollback, expiry) and proxy or
    network failures do.
  - A failed download (digest or size against the catalog, cut, timeout, HTTP, TLS, proxy) is tried again at the next
    sync. Only a package whose bytes are exactly those the catalog names and that then fails its own checks is
    remembered and not downloaded again (C(repeated) in RV(refused)) until the catalog names other bytes or
    M(exup.fleet.exup_package) clears it with O(exup.fleet.exup_package#module:state=refusals_cleared).
requirements:
  - cryptography >= 42.0 (package and catalog signatures; checked when the module starts)
  - lxml >= 5.2 (package metadata XML; checked when the module starts)
  - requests >= 2.31 (the feed, an upstream repository service, and a repository service URL in repository)
  - pycurl >= 7.45 (optional; package downloads use libcurl when it is installed, else requests)
  - requests-toolbelt >= 1.0.0 (for proxy_auth=digest)
'''

EXAMPLES = r'''
- name: Sync the repository from the vendor feed through an authenticating proxy
  exup.fleet.exup_repo_sync:
    repository: /var/lib/exup/repo
    feed_url: https://updates.example.com/exup/catalog.json
    trusted_keys:
      - /etc/exup/vendor.pub
    proxy_url: http://proxy.example.com:3128
    proxy_username: exup
    proxy_password: "{{ vault_proxy_password }}"
    proxy_auth: digest
    servers:
      - name: db01
        model: Express5800/R120h-1M
        os: rhel9
        modules:
          system-bios: {current: "1.04", previous: "1.02"}
  register: sync
'''

RETURN = r'''
added:
  description: Packages downloaded (in check mode, that would be downloaded).
  returned: always
  type: list
  elements: dict
  contains:
    package_id:
      description: The package.
      type: str
    module_id:
      description: The module it updates.
      type: str
    version:
      description: Its version.
      type: str
    size:
      description: Size of its file in bytes.
      type: int
    sha256:
      description: SHA-256 of its file.
      type: str
  sample: [{"package_id": "system-bios-r120a1m-any-1.04", "module_id": "system-bios", "version": "1.04", "size": 16777216}]
removed:
  description: Packages removed by generation management (in check mode, that would be removed).
  returned: always
  type: list
  elements: dict
  contains:
    package_id:
      description: The package.
      type: str
    module_id:
      description: The module it updated.
      type: str
    version:
      description: Its version.
      type: str
refused:
  description: Packages that were not accepted, with C(code) and C(reason).
  returned: always
  type: list
  elements: dict
  contains:
    package_id:
      description: The package.
      type: str
    module_id:
      description: The module it updates.
      type: str
    version:
      description: Its version.
      type: str
    code:
      description: Why, as a stable code (for example V(digest_mismatch), V(bad_signature), V(download_truncated)).
      type: str
    reason:
      description: Why, in words.
      type: str
    resumable:
      description: A partial download is kept and the next sync resumes it.
      type: bool
  sample: [{"package_id": "x", "code": "digest_mismatch", "reason": "payload/bios.rom does not match its SHA-256 in ExUpHash.xml"}]
skipped_tombstoned:
  description: Packages needed but not downloaded because they were deleted by hand (003 §2.2.4).
  returned: always
  type: list
  elements: str
events:
  description: Events of this run (003 Tables 18-19), also stored in the repository's event log.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The event's number in the repository's log.
      type: int
      returned: when read from the log
    time:
      description: When it happened (UTC, ISO 8601).
      type: str
    level:
      description: V(info), V(warning) or V(error).
      type: str
    code:
      description: The event's stable code (003 Tables 18-19), for example V(package_added).
      type: str
    message:
      description: The event in words.
      type: str
    detail:
      description: The event's details; its keys depend on the code (package_id, version, server, counts...).
      type: dict
      sample:
        added: 1
        removed: 0
        refused: 0
catalog:
  description:
    - Version, generation time, expiry and entry counts of the catalog used; when it was fetched, the trusted C(key_ids)
      that signed it and its C(feed_id).
  returned: always
  type: dict
  contains:
    version:
      description: The catalog's version.
      type: int
    generated:
      description: When the catalog was made.
      type: str
    expires:
      description: When it expires.
      type: str
    entries_new:
      description: Entries new since the last sync.
      type: int
    entries_total:
      description: Entries in the catalog.
      type: int
      returned: when the catalog was fetched
    key_ids:
      description: The trusted keys that signed it.
      type: list
      elements: str
      returned: when the catalog was fetched
    feed_id:
      description: The feed's id, when the catalog names one.
      type: str
      returned: when the catalog was fetched and names one
bytes_downloaded:
  description: Bytes of the packages downloaded and accepted (refused downloads are not counted).
  returned: always
  type: int
feed_unchanged:
  description: True when the feed answered 304 Not Modified.
  returned: always
  type: bool
plan_skipped:
  description:
    - True when the feed answered 304 and nothing the plan depends on changed since the last sync that left nothing to retry
      (stored packages, tombstones, refusals, the managers' servers, the feed state, the code), so no plan was made and
      nothing was downloaded or pruned. RV(refused) and RV(skipped_tombstoned) then repeat what that sync reported.
  returned: always
  type: bool
upstream:
  description:
    - With O(upstream=repository), what the upstream repository did for this one. C(url); C(manager_id), this repository's id
      there; C(servers) announced; C(download) V(finished) with C(added), C(removed) and C(refused) counts of the upstream's
      own download, or V(failed) with C(error) and C(msg), or V(skipped) in check mode (nothing is announced then).
    - Empty for a vendor feed.
  returned: always
  type: dict
  contains:
    url:
      description: The upstream repository service.
      type: str
    manager_id:
      description: This repository's manager id at the upstream.
      type: str
    servers:
      description: The servers announced.
      type: int
    download:
      description: V(finished), V(failed) or V(skipped) (check mode).
      type: str
    added:
      description: Packages the upstream's own download added.
      type: int
      returned: when the download finished
    removed:
      description: Packages it removed.
      type: int
      returned: when the download finished
    refused:
      description: Packages it refused.
      type: int
      returned: when the download finished
    error:
      description: The stable code of a failed download.
      type: str
      returned: when the download failed
    msg:
      description: A failed download in words.
      type: str
      returned: when the download failed
  sample:
    {"url": "https://dmz.example.com:8080", "manager_id": "chain-repo2-1f2e3d4c", "servers": 120, "download": "finished",
     "added": 3, "removed": 0, "refused": 0}
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.remote import is_remote
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import server_from_dict
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions, chained_options
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import HTTP_SPEC, REPOSITORY_SPEC, TRUST_SPEC, ExupModule


def main():
    argument_spec = dict(REPOSITORY_SPEC, **TRUST_SPEC)
    argument_spec.update(HTTP_SPEC)
    argument_spec.update(
        feed_url={'type': 'str'},
        trusted_keys={'type': 'list', 'elements': 'str', 'no_log': False},  # required for a local repository, checked below
        # No sub-option spec: AnsibleModule validating 2,000 servers key by key cost about 30 ms of every run;
        # server_from_dict checks each entry (the suboptions documented) and fails with error server_invalid.
        servers={'type': 'list', 'elements': 'dict'},
        workers={'type': 'int', 'default': 4},
        sync_timeout={'type': 'int', 'default': 3600},
        accept_catalog_version_reset={'type': 'bool', 'default': False},
        upstream={'type': 'str', 'default': 'vendor', 'choices': ['vendor', 'repository']},
        feed_username={'type': 'str'},
        feed_password={'type': 'str', 'no_log': True},
    )
    module = ExupModule(
        argument_spec,
        needs_http=True,
        supports_check_mode=True,
        required_together=[('proxy_username', 'proxy_password'), ('feed_username', 'feed_password')],
    )
    params = module.params
    servers = None
    if params['servers'] is not None:
        servers = [module.run(server_from_dict, params['manager_id'], item) for item in params['servers']]
    remote = is_remote(params['repository'])
    if not remote and not (params['feed_url'] and params['trusted_keys']):
        module.fail_json(msg='a local repository needs feed_url and trusted_keys to sync from its feed', error='argument_invalid')
    options = SyncOptions(
        feed_url=params['feed_url'] or '',
        manager_id=params['manager_id'],
        servers=servers,
        workers=params['workers'],
        time_limit=params['sync_timeout'],
        accept_version_reset=params['accept_catalog_version_reset'],
    )
    if params['upstream'] == 'repository':  # chained repositories (docs/architecture.md): feed_url names the upstream service
        if remote:
            module.fail_json(msg='upstream: repository is for a local repository; a remote one syncs from its own configuration', error='argument_invalid')
        options = module.run(chained_options, options)
    repo = module.repository()
    # a remote repository downloads with its own client and keys (003 §3.4.2): none are made here
    client, keyring = (None, None) if remote else (module.http_client(), module.keyring())
    if client is not None and params['feed_username']:
        module.run(client.use_credentials, options.feed_url, params['feed_username'], params['feed_password'])
    result = module.run(repo.sync, client, keyring, options, check_mode=module.check_mode)
    output = result.as_dict()
    if result.refused:
        module.warn('%d package(s) refused: %s' % (len(result.refused), '; '.join('%s (%s)' % (r['package_id'], r['code']) for r in result.refused[:5])))
    output['diff'] = {'before': {'removed': sorted(r['package_id'] for r in result.removed)}, 'after': {'added': sorted(a['package_id'] for a in result.added)}}
    module.exit_json(**output)


if __name__ == '__main__':
    main()
