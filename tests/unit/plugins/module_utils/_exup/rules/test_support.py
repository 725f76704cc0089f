# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""support.py: whether the agent supports a model and OS, and each side's exact wording of the blockers."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import MODULE_KINDS, PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import support
from ansible_collections.exup.fleet.plugins.module_utils._exup.schemas import PACKAGE_SCHEMA_VERSION

MODEL = 'Express5800/R120h-1M'
OTHER_MODEL = 'Express5800/GT110x-9'


def info(models=(MODEL,), os_names=('rhel9', 'sles15'), module=support.AGENT_MODULE, version='1.0', schema=PACKAGE_SCHEMA_VERSION):
    return PackageInfo(
        package_id='%s-%s' % (module, version),
        module_id=module,
        module_name=module,
        version=version,
        release_date='2025-01-01',
        models=list(models),
        os=list(os_names),
        kind='linux',
        auto_update=True,
        reboot_required=False,
        downgrade_supported=True,
        uninstall_supported=True,
        install_command='./install.sh',
        uninstall_command='./uninstall.sh',
        schema_version=schema,
    )


def codes(blockers):
    return [item['code'] for item in blockers]


def test_the_agent_module_id_is_the_one_of_table_6():
    assert support.AGENT_MODULE == 'update-agent' and support.AGENT_MODULE in MODULE_KINDS
    assert support.is_agent(info()) and not support.is_agent(info(module='system-bios'))


def test_support_is_the_union_of_the_readable_agent_packages():
    found = support.agent_support(
        [
            info(version='1.0'),
            info(models=(OTHER_MODEL,), os_names=('ubuntu2204',), version='1.1'),
            info(models=('BIOS-only',), module='system-bios'),
            info(models=('Future',), os_names=('rhel10',), schema=PACKAGE_SCHEMA_VERSION + 1),
        ]
    )
    assert found.models == {MODEL, OTHER_MODEL}
    assert found.systems == {'rhel9', 'sles15', 'ubuntu2204'}


@pytest.mark.parametrize('infos', [[], [info(module='system-bios')], [info(schema=PACKAGE_SCHEMA_VERSION + 1)]])
def test_without_agent_packages_nothing_is_known_and_nothing_refused(infos):
    found = support.agent_support(infos)
    assert found == support.AgentSupport() and found.models is None and found.systems is None
    for wording in (support.HOST, support.REPOSITORY, support.WIZARD):
        assert support.support_blockers(found, 'anything', 'centos6', wording) == []


def test_a_supported_server_has_no_blockers():
    found = support.AgentSupport.of([MODEL], ['rhel9'])
    for wording in (support.HOST, support.REPOSITORY, support.WIZARD):
        assert support.support_blockers(found, MODEL, 'rhel9', wording, 'Red Hat Enterprise Linux 9.4') == []


def test_host_wording_os_first_with_the_supported_list():
    found = support.AgentSupport.of([MODEL], ['sles15', 'rhel9'])
    blockers = support.support_blockers(found, 'ThinkSystem SR650', 'debian12', support.HOST, 'Debian GNU/Linux 12 (bookworm)')
    assert blockers == [
        {'code': 'unsupported_os', 'msg': 'OS debian12 (Debian GNU/Linux 12 (bookworm)) is not supported by the agent (supported: rhel9, sles15)'},
        {'code': 'unsupported_model', 'msg': "model 'ThinkSystem SR650' is not supported by the agent: this server does not support exup"},
    ]


def test_repository_wording_model_first_and_short():
    found = support.AgentSupport.of([MODEL], ['rhel9'])
    blockers = support.support_blockers(found, OTHER_MODEL, 'centos6', support.REPOSITORY, 'CentOS Linux 6.10 (Final)')
    assert blockers == [
        {'code': 'unsupported_model', 'msg': "model 'Express5800/GT110x-9' is not supported by the agent packages in the repository"},
        {'code': 'unsupported_os', 'msg': 'OS centos6 is not supported by the agent packages in the repository'},
    ]


def test_wizard_wording_as_docs_managed_servers_shows_it():
    """The lines of docs/managed-servers.md (the wizard's refusals in the lab)."""
    found = support.AgentSupport.of([MODEL], ['rhel8', 'rhel9', 'sles15', 'ubuntu2204'])
    os_refusal = support.support_blockers(found, MODEL, 'centos6', support.WIZARD, 'CentOS Linux 6.10 (Final)')
    model_refusal = support.support_blockers(found, OTHER_MODEL, 'rhel9', support.WIZARD, 'Red Hat Enterprise Linux 9.4')
    assert os_refusal == [
        {
            'code': 'unsupported_os',
            'msg': 'OS centos6 (CentOS Linux 6.10 (Final)) is not supported by the agent packages in the '
            'repository (supported: rhel8, rhel9, sles15, ubuntu2204)',
        }
    ]
    assert model_refusal == [
        {
            'code': 'unsupported_model',
            'msg': "model 'Express5800/GT110x-9' is not supported by the agent packages in the repository: this server does not support exup",
        }
    ]


def test_an_unknown_pretty_name_is_said_so():
    blockers = support.support_blockers(support.AgentSupport.of(None, ['rhel9']), MODEL, 'unknown', support.HOST)
    assert blockers[0]['msg'] == 'OS unknown (unknown) is not supported by the agent (supported: rhel9)'


def test_only_what_is_known_is_checked():
    assert codes(support.support_blockers(support.AgentSupport.of([MODEL], None), OTHER_MODEL, 'centos6', support.REPOSITORY)) == ['unsupported_model']
    assert codes(support.support_blockers(support.AgentSupport.of(None, ['rhel9']), OTHER_MODEL, 'centos6', support.REPOSITORY)) == ['unsupported_os']


def test_package_blocker_names_the_package_and_the_first_reason():
    package = info(os_names=('rhel9',))
    assert support.package_blocker(package, MODEL, 'rhel9') is None
    assert support.package_blocker(info(os_names=('any',)), MODEL, 'centos6') is None
    assert support.package_blocker(package, OTHER_MODEL, 'centos6') == {
        'code': 'unsupported_model',
        'msg': 'agent package update-agent-1.0 does not support Express5800/GT110x-9 on centos6: this server does not support exup',
    }
    assert support.package_blocker(package, MODEL, 'centos6')['code'] == 'unsupported_os'
