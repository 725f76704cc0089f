# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of the modules that run through action plugins (exup_info, exup_apply, exup_agent).

One place: the module files (for docs and sanity) and the action plugins (which
validate the task's arguments on the controller) both use these.
"""

from __future__ import annotations

from ansible_collections.exup.fleet.plugins.module_utils._exup.host.agent_runner import AGENT_DIR

# The feed's HTTP options are the repository modules' own (one definition).
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import HTTP_SPEC, REMOTE_SPEC

HOST_SPEC = {
    'host_root': {'type': 'path', 'default': '/'},
    'manager_id': {'type': 'str', 'default': 'local'},
    'server_name': {'type': 'str'},
}


#: the out-of-band path (via: bmc): the action plugin talks to the BMC from the controller
BMC_SPEC = {
    'via': {'type': 'str', 'default': 'agent', 'choices': ['agent', 'bmc']},
    'bmc_address': {'type': 'str'},
    'bmc_protocol': {'type': 'str', 'default': 'redfish', 'choices': ['redfish', 'ipmi']},
    'bmc_username': {'type': 'str'},
    'bmc_password': {'type': 'str', 'no_log': True},
    'bmc_port': {'type': 'int'},
    'bmc_system': {'type': 'str'},
    'bmc_validate_certs': {'type': 'bool', 'default': True},
    'bmc_ca_path': {'type': 'path'},
    'bmc_timeout': {'type': 'int', 'default': 60},
    'model': {'type': 'str'},
}

INFO_SPEC = dict(
    HOST_SPEC,
    **BMC_SPEC,
    **REMOTE_SPEC,
    repository={'type': 'str'},
    # 'register' is Ansible's task keyword too: the old name stays as a deprecated alias until 2.0.0
    register_server={
        'type': 'bool',
        'default': False,
        'aliases': ['register'],
        'deprecated_aliases': [{'name': 'register', 'version': '2.0.0', 'collection_name': 'exup.fleet'}],
    },
    trusted_keys={'type': 'list', 'elements': 'str', 'default': [], 'no_log': False},
    boot_id_before_reboot={'type': 'str'},
    verify_versions={'type': 'dict'},
    bmc_tasks={'type': 'bool', 'default': False},
)

APPLY_SPEC = dict(
    HOST_SPEC,
    **BMC_SPEC,
    **REMOTE_SPEC,
    repository={'type': 'str', 'required': True},
    # auto: a remote repository's files go from the service to the host or BMC directly; a local one's through the controller
    package_transfer={'type': 'str', 'default': 'auto', 'choices': ['auto', 'service', 'controller']},
    trusted_keys={'type': 'list', 'elements': 'str', 'required': True, 'no_log': False},
    state={'type': 'str', 'default': 'present', 'choices': ['present', 'absent', 'cancelled']},
    modules={'type': 'list', 'elements': 'str'},
    versions={'type': 'dict', 'default': {}},
    latest_only={'type': 'bool', 'default': True},
    lease_seconds={'type': 'int', 'default': 60},
    poll_interval={'type': 'int', 'default': 5},
    wait_timeout={'type': 'int', 'default': 7200},
    update_method={'type': 'str', 'default': 'push', 'choices': ['push', 'simple_update']},
    image_base_url={'type': 'str'},
    apply_time={'type': 'str', 'default': 'OnReset', 'choices': ['OnReset', 'Immediate']},
    allow_reboot={'type': 'bool', 'default': False},
    reboot_timeout={'type': 'int', 'default': 1200},
    power_cycle={'type': 'bool', 'default': False},
    task_timeout={'type': 'int', 'default': 1800},
    maintenance_windows={'type': 'list', 'elements': 'str'},  # iCalendar texts (rules/window.py)
    expected_duration={'type': 'int'},
)

AGENT_SPEC = dict(
    HOST_SPEC,
    **HTTP_SPEC,
    **REMOTE_SPEC,
    repository={'type': 'str'},
    trusted_keys={'type': 'list', 'elements': 'str', 'default': [], 'no_log': False},
    state={'type': 'str', 'default': 'present', 'choices': ['present', 'absent', 'query', 'logs_collected']},
    source={'type': 'str', 'default': 'repository', 'choices': ['repository', 'feed', 'media', 'file']},
    feed_url={'type': 'str'},
    media_path={'type': 'path'},
    file={'type': 'path'},
    prefer_newer={'type': 'bool', 'default': True},
    license_accepted={'type': 'bool', 'default': False},
    os_type={'type': 'str', 'default': 'linux', 'choices': ['linux', 'windows']},
    install_dir={'type': 'path'},
    logs_dest={'type': 'path'},
)

#: where the agent lives on Linux (003 §3.8.1.1 step 3: fixed, not configurable); defined once, by the runner
LINUX_AGENT_DIR = '/' + AGENT_DIR


def refuse_direct_run(name, argument_spec):
    """main() of a module that only runs through its action plugin: validate, then say so."""
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    module.fail_json(msg='%s runs through its action plugin on the controller; call it as exup.fleet.%s in a play' % (name, name))
