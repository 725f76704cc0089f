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
      - The repository, either the directory of a local repository store (packages, SQLite index, lock) on the host the
        module runs on, or the URL of a repository service, for example V(https://repo.example.com:8080) (003 §1.3).
      - A local store is created on the first write; check mode never creates it.
      - A remote repository is checked first (connection, password, API version). An unreachable one fails with
        C(repository_unreachable), a wrong password with C(auth_failed), and a feature an older repository lacks
        with C(repository_too_old) naming what it limits.
    type: str
    required: true
  manager_id:
    description:
      - Identifies the manager (this controller, AWX instance or site) acting on the repository.
      - Packages needed only by servers of other managers are flagged as used by another manager (003 §2.2.4).
    type: str
    default: local
'''

    # How to reach a repository service: every module that takes repository has them (with this fragment).
    REMOTE = r'''
options:
  repository_user:
    description:
      - The user of a remote repository. V(admin) may change the repository (register servers, download, add);
        V(read) may only read packages and listings.
      - Ignored for a local repository.
    type: str
    choices: [admin, read]
    default: admin
  repository_password:
    description:
      - The password of O(repository_user) at a remote repository. Required for a remote repository, as there is no
        default password. Never logged.
    type: str
  repository_ca_path:
    description: CA bundle (PEM) to verify a remote repository's certificate with, instead of the system store.
    type: path
  repository_validate_certs:
    description: Verify the TLS certificate of a remote repository. Turn off only for tests.
    type: bool
    default: true
  repository_timeout:
    description: Seconds to wait for a connection to, or each answer of, a remote repository.
    type: int
    default: 30
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
