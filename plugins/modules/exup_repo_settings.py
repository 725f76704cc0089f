#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_repo_settings
short_description: Change the settings a repository keeps (schedule, proxy, passwords, notices, initial icon)
version_added: 0.1.0
description:
  - The repository settings of 003 §3.3 on the repository host, or through its repository service (O(repository) a URL).
  - With options it changes them (the event C(settings_changed), with the values before and after; C(settings_change_failed)
    when a value is refused, 003 Table 19, and then nothing changes). Every value is checked before anything is written.
  - Without options it reads them (the event C(settings_read), 003 Table 18). To read without leaving an event, and without
    waiting for a sync that holds the repository, use M(exup.fleet.exup_repo_settings_info).
  - The settings are kept with their history, so a package that reaches the repository gets the initial icon set at that moment.
  - "The secrets (O(admin_password), O(read_password), O(proxy_password), O(webhook_secret)) are never kept in the settings
    table nor in events, and never returned: the service passwords are kept as Argon2id hashes in
    C(<repository>/service-credentials.json), the proxy password and the webhook secret in C(<repository>/service-secrets.json),
    both readable by their owner only (0600). Results and the diff show each secret's state only: C(not set), C(set), or
    C(changed)."
  - A password given again that matches the stored one changes nothing (no new hash is written), so the task is idempotent.
    A running repository service takes a new password at its next request, without a restart.
  - "There is no default password. The guide's repository password defaults to C(password) (003 §3.3 4-(ア)-③); this
    collection departs from it on purpose: a well-known password on a service that hands out firmware and accepts packages is
    an open door. The repository service refuses to start until O(admin_password) has been set (C(credentials_missing))."
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.repository
  - exup.fleet.repository.remote
options:
  initial_manual_icon:
    description:
      - The "initial status icon" of 003 §3.3 step 5. When a package that is not auto-update reaches the repository, the
        modules it updates show this icon (status C(-) of 003 Table 9) until an operator sets another one with
        M(exup.fleet.exup_server_status).
      - V(latest) stands for "latest", V(update_available) for "update available", V(no_package) for "no package".
      - Not given, the setting is left as it is; a new repository starts with V(update_available).
    type: str
    choices: [latest, update_available, no_package]
  download_interval_hours:
    description:
      - How often the repository service downloads from the vendor feed by itself (003 §3.3 4-(ア)-①, §3.4.1), in hours,
        from 1 to 744 (31 days); V(0) turns the scheduled download off. A new repository starts with V(0).
      - The runs are fixed slots counted from O(download_at), never from when the service started. An interval of at most
        24 hours repeats within each day from O(download_at) (6 hours at 03:00 is 03:00, 09:00, 15:00, 21:00); a longer one
        counts whole intervals from 1970-01-01 at O(download_at). A slot missed while the service was down runs once when it
        is back.
      - The service downloads from the feed its configuration names (C(feed_url), C(trusted_keys); the distribution server's
        address is not a setting, §3.3 4-(ア)-①) for the servers every manager registered, and tells of new packages
        (O(notify_webhooks)).
    type: int
  download_at:
    description:
      - The time of day of the first scheduled download, C(HH:MM) in UTC. A new repository starts with V(03:00).
    type: str
  notify_webhooks:
    description:
      - URLs (V(http://) or V(https://), at most 8, each once, without a user name or password) the repository service posts
        the C(packages_arrived) notice to when a scheduled download added packages (003 §3.4.4), JSON with the packages and
        the managed servers they concern, header C(X-Exup-Event), and C(X-Exup-Signature) (HMAC-SHA256 of the body) when
        O(webhook_secret) is set. Redirects are not followed; a webhook that fails is logged (C(webhook_failed)) and stops nothing.
      - V([]) removes them all.
    type: list
    elements: str
  webhook_secret:
    description:
      - The key of the webhooks' C(X-Exup-Signature). Never logged nor returned. V('') removes it.
    type: str
  proxy_url:
    description:
      - The proxy of the repository's own downloads (the scheduled ones and "download now" through the service), for example
        V(http://proxy.example.com:3128), without a user name or password in it (003 §3.3 4-(ア)-②, §2.2.7). V('') for none.
      - M(exup.fleet.exup_repo_sync) run by a playbook takes its own proxy options, not this setting.
    type: str
  proxy_username:
    description: The user of the proxy's Basic or Digest authentication. V('') for none.
    type: str
  proxy_password:
    description: The password of O(proxy_username). Never logged nor returned. V('') removes it.
    type: str
  proxy_auth:
    description: The proxy's authentication scheme. NTLM is not supported (003 §2.2.7).
    type: str
    choices: [basic, digest]
  admin_password:
    description:
      - The password of the repository service's C(admin) user (managers, who may change the repository), the "repository
        password" of 003 §3.3 4-(ア)-③. At least 12 characters (C(password_weak) otherwise). Never logged nor returned.
      - There is no default; see the description.
    type: str
  read_password:
    description:
      - The password of the C(read) user (managed hosts, BMCs and readers, who may only download and list). At least 12
        characters. V('') removes it (then only C(admin) can log in). Needs an admin password.
    type: str
attributes:
  check_mode:
    support: full
    description: Reports what would change; logs nothing, writes nothing, creates nothing.
  diff_mode:
    support: full
    description: The settings before and after; a secret shows as C(set) before and C(changed) after, never its value.
notes:
  - The repository service reads the settings again at least every minute, so a changed schedule takes effect within a minute.
seealso:
  - module: exup.fleet.exup_repo_settings_info
requirements:
  - cryptography >= 42.0 (package and catalog signatures; checked when the module starts)
  - lxml >= 5.2 (package metadata XML; checked when the module starts)
  - requests >= 2.31 (only when repository is the URL of a repository service)
'''

EXAMPLES = r'''
- name: Download from the vendor every 6 hours from 02:30 UTC, through the proxy, and tell the operators' chat
  exup.fleet.exup_repo_settings:
    repository: /var/lib/exup/repo
    download_interval_hours: 6
    download_at: "02:30"
    proxy_url: http://proxy.example.com:3128
    proxy_username: exup
    proxy_password: "{{ vault_proxy_password }}"
    proxy_auth: digest
    notify_webhooks:
      - https://chat.example.com/hooks/exup
    webhook_secret: "{{ vault_webhook_secret }}"

- name: Set the repository service's passwords (there is no default)
  exup.fleet.exup_repo_settings:
    repository: /var/lib/exup/repo
    admin_password: "{{ vault_repository_admin_password }}"
    read_password: "{{ vault_repository_read_password }}"

- name: Packages to apply by hand show as "latest" until someone says otherwise
  exup.fleet.exup_repo_settings:
    repository: /var/lib/exup/repo
    initial_manual_icon: latest
'''

RETURN = r'''
settings:
  description:
    - Setting name to value, after the change, and each secret's state (V(not set), V(set), or V(changed) when this task
      changed it).
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
    download_interval_hours: 6
    download_at: "02:30"
    notify_webhooks: [https://chat.example.com/hooks/exup]
    proxy_url: http://proxy.example.com:3128
    proxy_username: exup
    proxy_auth: digest
    admin_password: changed
    read_password: set
    proxy_password: set
    webhook_secret: not set
before:
  description: The same, before the change.
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
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import SETTINGS
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import REPOSITORY_SPEC, ExupModule

OPTIONS = {
    'initial_manual_icon': {'type': 'str', 'choices': list(SETTINGS['initial_manual_icon'][0] or ())},
    'download_interval_hours': {'type': 'int'},
    'download_at': {'type': 'str'},
    'notify_webhooks': {'type': 'list', 'elements': 'str'},
    'webhook_secret': {'type': 'str', 'no_log': True},
    'proxy_url': {'type': 'str'},
    'proxy_username': {'type': 'str'},
    'proxy_password': {'type': 'str', 'no_log': True},
    'proxy_auth': {'type': 'str', 'choices': list(SETTINGS['proxy_auth'][0] or ())},
    'admin_password': {'type': 'str', 'no_log': True},
    'read_password': {'type': 'str', 'no_log': True},
}


def main():
    module = ExupModule(dict(REPOSITORY_SPEC, **OPTIONS), supports_check_mode=True)
    repo = module.repository()
    wanted = {name: module.params[name] for name in OPTIONS if module.params.get(name) is not None}
    if wanted:
        before, after = module.run(repo.change_settings, wanted, check_mode=module.check_mode)
    else:
        before = after = module.run(repo.read_settings, check_mode=module.check_mode)
    module.exit_json(changed=before != after, settings=after, before=before, diff={'before': before, 'after': after})


if __name__ == '__main__':
    main()
