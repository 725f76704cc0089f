#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_repo_settings_info
short_description: Read the settings a repository keeps
version_added: 0.1.0
description:
  - Reads the repository settings of 003 §3.3 (the download schedule, the proxy, the webhooks told of new packages, the initial
    status icon) on the repository host, or through its repository service (O(repository) a URL). Read-only.
  - Secrets are never returned. For the service passwords, the proxy password and the webhook secret it says only whether each
    is set. There is no default password (see M(exup.fleet.exup_repo_settings)), so V(not set) for C(admin_password) means
    the repository service refuses to start.
  - It writes nothing, not even the C(settings_read) event, and never waits for a sync that holds the repository. Changing the
    settings is M(exup.fleet.exup_repo_settings).
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.repository
  - exup.fleet.repository.remote
attributes:
  check_mode:
    support: full
    description: The module only reads; it behaves the same in check mode.
seealso:
  - module: exup.fleet.exup_repo_settings
requirements:
  - cryptography >= 42.0 (package and catalog signatures; checked when the module starts)
  - lxml >= 5.2 (package metadata XML; checked when the module starts)
  - requests >= 2.31 (only when repository is the URL of a repository service)
'''

EXAMPLES = r'''
- name: Read the repository settings
  exup.fleet.exup_repo_settings_info:
    repository: /var/lib/exup/repo
  register: repo_settings

- name: The repository service cannot start without an admin password
  ansible.builtin.assert:
    that: repo_settings.settings.admin_password == 'set'
'''

RETURN = r'''
settings:
  description:
    - Setting name to value; for each secret (C(admin_password), C(read_password), C(proxy_password), C(webhook_secret))
      V(set) or V(not set).
    - C(download_interval_hours) is a number (V(0) when the scheduled download is off), C(notify_webhooks) a list; an
      unset C(proxy_url) or C(proxy_username) is V('').
  returned: always
  type: dict
  contains:
    initial_manual_icon:
      description: The icon a package to apply by hand shows until someone sets it.
      type: str
    download_interval_hours:
      description: Hours between the service's scheduled downloads from the feed (V(0) - off).
      type: int
    download_at:
      description: The time of day (UTC, HH:MM) the download schedule starts from.
      type: str
    notify_webhooks:
      description: URLs told of events.
      type: list
      elements: str
    proxy_url:
      description: The proxy for downloads.
      type: str
    proxy_username:
      description: The proxy's user.
      type: str
    proxy_auth:
      description: V(basic) or V(digest).
      type: str
    admin_password:
      description: The service's admin password's state (V(not set), V(set), V(changed)); never the password.
      type: str
    read_password:
      description: The service's read password's state; never the password.
      type: str
    proxy_password:
      description: The proxy password's state; never the password.
      type: str
    webhook_secret:
      description: The webhook secret's state; never the secret.
      type: str
  sample:
    initial_manual_icon: update_available
    download_interval_hours: 24
    download_at: "03:00"
    notify_webhooks: []
    proxy_url: ""
    proxy_username: ""
    proxy_auth: basic
    admin_password: set
    read_password: not set
    proxy_password: not set
    webhook_secret: not set
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup_module import REPOSITORY_SPEC, ExupModule


def main():
    module = ExupModule(dict(REPOSITORY_SPEC), supports_check_mode=True)
    repo = module.repository()
    settings = module.run(repo.read_settings, check_mode=True)  # check mode: read-only, no settings_read event
    module.exit_json(changed=False, settings=settings)


if __name__ == '__main__':
    main()
