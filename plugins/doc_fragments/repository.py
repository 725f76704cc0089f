# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of every module that works on a repository store.
    DOCUMENTATION = r'''
options:
  repository:
    description:
      - Directory of the repository store (packages, SQLite index, lock) on the repository host.
      - It is created on the first write; check mode never creates it.
    type: path
    required: true
  manager_id:
    description:
      - Identifies the manager (this controller, AWX instance or site) acting on the repository.
      - Packages needed only by servers of other managers are flagged as used by another manager (003 §2.2.4).
    type: str
    default: local
'''

    TRUST = r'''
options:
  trusted_keys:
    description:
      - Ed25519 public keys (PEM text, or paths of PEM files on the repository host) trusted to sign packages and catalogs.
      - Add a new vendor key here before the vendor signs with it, so keys can rotate.
    type: list
    elements: str
    required: true
'''

    HTTP = r'''
options:
  proxy_url:
    description:
      - HTTP proxy for the feed, for example V(http://proxy.example.com:3128).
    type: str
  proxy_username:
    description: User for proxy authentication.
    type: str
  proxy_password:
    description: Password for proxy authentication. Never logged.
    type: str
  proxy_auth:
    description:
      - Proxy authentication scheme. NTLM is not supported (003 §2.2.7); a proxy that asks only for NTLM gets a clear error.
      - Both schemes work for V(http://) and V(https://) feed URLs.
    type: str
    choices: [basic, digest]
    default: basic
  validate_certs:
    description: Verify TLS certificates of the feed. Turn off only for tests.
    type: bool
    default: true
  ca_path:
    description: CA bundle (PEM) to verify the feed's certificate with, instead of the system store.
    type: path
  timeout:
    description:
      - Seconds to wait for a connection attempt or for each read.
      - It bounds one wait, not a whole request. A whole request of a sync has its own limit (60 seconds plus its
        stated size at 64 KiB/s), and the sync as a whole its time limit (C(sync_timeout) of M(exup.fleet.exup_repo_sync)).
    type: int
    default: 30
'''
