# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: exup
short_description: The servers a repository knows, as hosts grouped by model, OS, server status and manager
version_added: 0.1.0
description:
  - Lists every server registered in an exup repository (by M(exup.fleet.exup_info) with O(exup.fleet.exup_info#module:register_server=true),
    by M(exup.fleet.exup_repo_sync) O(exup.fleet.exup_repo_sync#module:servers), or by a remote manager's presence) as an inventory host.
  - The repository is a local store path, or a repository service (V(https://host:8080)) reached with its read or admin password.
  - Statuses are those of M(exup.fleet.exup_info) (003 Tables 8-10) as the repository sees them, from the versions last registered, the
    packages it holds for the server's model and OS, the icons chosen by hand and the BMC path's records. What only the host knows now
    (a job running, a restart under way, the agent path's reboot-required block) shows in M(exup.fleet.exup_info) only.
  - 'Host variables (all prefixed C(exup_)): C(exup_server_name), C(exup_manager_id), C(exup_model), C(exup_os), C(exup_server_status),
    C(exup_modules) (module id -> C(name), C(current), C(previous), C(status), C(manual_icon), C(block), C(newest)), C(exup_module_versions)
    (module id -> current version), C(exup_module_statuses) (module id -> status), C(exup_modules_available) (modules the repository has
    packages for that the server does not show), C(exup_unknown_packages), C(exup_paths) (V(agent), plus V(bmc) when the BMC path has records
    of the server), C(exup_read_at) (when M(exup.fleet.exup_info) last read and registered the versions, UTC ISO 8601; V(null) for a server
    never read, for example one declared by M(exup.fleet.exup_repo_sync) O(exup.fleet.exup_repo_sync#module:servers)). No password is ever a
    host variable.'
  - The repository does not keep BMC addresses; build C(exup_bmc_address) and the other C(exup_bmc_*) variables of
    C(playbooks/bmc_apply.yml) with O(compose), or set them in C(host_vars).
  - 'Groups: C(<group_prefix>model_<model>), C(<group_prefix>os_<os>), C(<group_prefix>status_<server status>) and
    C(<group_prefix>manager_<manager id>); every character but letters, digits and C(_) becomes C(_).'
  - A server name that two managers register becomes C(name@manager_id) for both.
  - 'The inventory source must be a file whose name ends in C(exup.yml) or C(exup.yaml), with C(plugin: exup.fleet.exup).'
  - Any failure (no such repository, an unreachable service, a wrong password, an answer that is not one) stops with one line that names
    its stable error code, for example C([error repository_unreachable]).
author: exup.fleet contributors (@exup-fleet)
requirements:
  - requests (for a repository service URL)
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin; it must be V(exup.fleet.exup) for this plugin to read the file.
    type: str
    required: true
    choices: [exup.fleet.exup, exup]
  repository:
    description:
      - A local repository store directory, or the URL of a repository service (V(http://) or V(https://), port 8080 unless given).
    type: str
    required: true
    env:
      - name: EXUP_REPOSITORY
  repository_user:
    description: The service's user, V(read) or V(admin); either may list the servers.
    type: str
    default: read
    env:
      - name: EXUP_REPOSITORY_USER
  repository_password:
    description:
      - The password of O(repository_user) at the service (there is no default); keep it in a vault or in the environment.
    type: str
    env:
      - name: EXUP_REPOSITORY_PASSWORD
  repository_ca_path:
    description: A CA bundle that signs the service's certificate (the system store without it).
    type: path
  repository_validate_certs:
    description: Whether to verify the service's TLS certificate.
    type: bool
    default: true
  repository_timeout:
    description: Seconds to wait for the service to connect and for each read of an answer.
    type: float
    default: 30
  timeout:
    description: Seconds the whole listing may take (all pages); past it the inventory fails with C(inventory_timeout).
    type: float
    default: 300
  page_size:
    description: Servers asked of a repository service per request.
    type: int
    default: 5000
  managers:
    description: Only the servers of these manager ids; all when empty.
    type: list
    elements: str
    default: []
  group_prefix:
    description: The prefix of the groups this plugin makes (not of O(keyed_groups)).
    type: str
    default: exup_
'''

EXAMPLES = r'''
# inventory/fleet.exup.yml: the servers of a local repository, grouped
plugin: exup.fleet.exup
repository: /var/lib/exup/repo

---
# inventory/dmz.exup.yml: a repository service, cached for an hour, BMC addresses by a naming rule
plugin: exup.fleet.exup
repository: https://repo.example.com:8080
repository_user: read
repository_ca_path: /etc/exup/ca.pem
# repository_password from EXUP_REPOSITORY_PASSWORD
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/exup-inventory
cache_timeout: 3600
compose:
  exup_bmc_address: exup_server_name ~ '-bmc.example.com'
  exup_bmc_protocol: "'redfish'"
keyed_groups:
  - key: exup_module_statuses['system-bios'] | default('none')
    prefix: bios
groups:
  needs_update: exup_server_status == 'update_available'
'''

import threading  # noqa: E402  # after the documentation, as in every Ansible plugin

from ansible.errors import AnsibleParserError  # noqa: E402  # after the documentation, as in every Ansible plugin
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402  # after the documentation, as in every Ansible plugin

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError  # noqa: E402  # after the documentation, as in every Ansible plugin
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import inventory as rules  # noqa: E402  # after the documentation, as in every Ansible plugin

NAME_ENDINGS = ('exup.yml', 'exup.yaml')


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = 'exup.fleet.exup'

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(NAME_ENDINGS)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        hosts = None
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache')
        if use_cache and cache:
            try:
                hosts = self._cache[cache_key]
            except KeyError:
                hosts = None
        if hosts is None:
            hosts = self._listing()
            if use_cache:
                self._cache[cache_key] = hosts
        self._populate(hosts)

    def _exup_options(self):
        names = ('repository', 'repository_user', 'repository_password', 'repository_ca_path', 'repository_validate_certs', 'repository_timeout')
        options = {name: self.get_option(name) for name in names}
        options.update(managers=list(self.get_option('managers') or ()), page_size=self.get_option('page_size'), group_prefix=self.get_option('group_prefix'))
        return options

    def _listing(self):
        """The hosts as JSON-ready dicts (what the cache keeps), within the timeout option, or AnsibleParserError."""
        options = self._exup_options()
        limit = self.get_option('timeout')
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0:
            raise _error('timeout must be a positive number of seconds', 'argument_invalid')
        outcome = {}

        def work():
            try:
                outcome['hosts'] = list_hosts(options)
            except ExupError as exc:
                outcome['error'] = (exc.msg, exc.code)
            except Exception as exc:  # pylint: disable=broad-exception-caught  # a bug or a broken store is one line, no traceback
                outcome['error'] = ('the repository %s could not be listed: %s: %s' % (options['repository'], type(exc).__name__, exc), 'inventory_failed')

        worker = threading.Thread(target=work, name='exup-inventory', daemon=True)
        worker.start()
        worker.join(limit)
        if worker.is_alive():
            raise _error('listing the repository %s took longer than timeout (%s s)' % (options['repository'], limit), 'inventory_timeout')
        if 'error' in outcome:
            raise _error(*outcome['error'])
        return outcome['hosts']

    def _populate(self, hosts):
        strict = self.get_option('strict')
        for host in hosts:
            name = host['name']
            self.inventory.add_host(name)
            for group in host['groups']:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            for key, value in host['vars'].items():
                self.inventory.set_variable(name, key, value)
            variables = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option('compose'), variables, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option('groups'), variables, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), variables, name, strict=strict)


def _error(msg, code):
    return AnsibleParserError('exup.fleet.exup: %s [error %s]' % (msg, code))


def open_repository(options):
    """The repository the options name: local store (it must exist) or the service (read-only: no presence)."""
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo import remote

    location = options['repository']
    if not isinstance(location, str) or not location:
        raise ExupError('repository must name a store directory or a repository service URL', code='argument_invalid')
    if remote.is_remote(location):
        return remote.RemoteRepository(
            remote.RemoteOptions(
                url=location,
                password=options['repository_password'],
                user=options['repository_user'] or 'read',
                ca_path=options['repository_ca_path'],
                validate_certs=options['repository_validate_certs'],
                timeout=options['repository_timeout'],
                presence=False,
            )
        )
    repo = remote.open_repository({'repository': location})
    if not repo.exists():
        raise ExupError('there is no repository at %s (no store index there)' % location, code='repository_missing')
    if not repo.readable():
        raise ExupError('the repository at %s is not readable by this user' % location, code='repository_unreadable')
    return repo


def list_hosts(options):
    """Every registered server as {name, vars, groups}: the packages once, the servers a page at a time (one query per table)."""
    repo = open_repository(options)
    page_size = options['page_size']
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 0 < page_size <= 10000:
        raise ExupError('page_size must be a number from 1 to 10000', code='argument_invalid')
    packages = repo.packages()
    infos = [package.info for package in packages]
    added = {package.package_id: package.added_at for package in packages}
    managers = set(options['managers'])
    servers, bmc, icons, initial, read_at = [], {}, {}, [], {}
    after, seen = None, set()
    limit = page_size if hasattr(repo, 'base_url') else None  # a local store is read in one go
    while True:
        page = repo.fleet(after, limit)
        servers.extend(server for server in page.servers if not managers or server.manager_id in managers)
        bmc.update(page.bmc)
        icons.update(page.icons)
        read_at.update(page.read_at)
        initial = page.initial_icons
        if page.next is None:
            break
        if page.next in seen or (after is not None and page.next <= after):
            raise ExupError('the repository %s sent a page that does not advance' % options['repository'], code='service_answer_invalid')
        seen.add(page.next)
        after = page.next
    hosts = rules.fleet_hosts(servers, infos, added, bmc, icons, initial, group_prefix=options['group_prefix'], read_at=read_at)
    return [{'name': host.name, 'vars': host.variables, 'groups': list(host.groups)} for host in hosts]
