# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller-to-host contract, declared once (issue 9 item 4).

The action plugins (controller) call the internal module ``exup_host`` (managed
host) with plan items, the agent package and keys; ``exup_host`` answers with
facts, states and jobs. Both sides use this file: the dataclasses validate what
crosses (a missing or bad field is ``contract_invalid`` naming it, never a
KeyError), the argument spec fragments are ``exup_host``'s suboptions, and
``CONTRACT_VERSION`` is sent and answered on every call (``contract_mismatch``).

The on-host agent (``/opt/exup/agent``) is installed on its own and may be older
or newer than the collection: the records it writes (journal, ``state.json``) are
checked here too, so a record of another agent version is ``agent_version_mismatch``
saying what is missing. Runs on both sides: no Ansible imports.
"""

from __future__ import annotations

import dataclasses
import re
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent_runner as runner

#: the version of this contract; the controller sends it, exup_host refuses another one and answers with its own
CONTRACT_VERSION = 2  # 2: a package may come as a pool ticket URL of the repository service (url, url_ca)
SHA256_PATTERN = re.compile(r'^[0-9a-f]{64}$')
ACTIONS = ('install', 'uninstall')
_Check = typing.Callable[[typing.Any, str], None]
_TYPES = {'str': str, 'int': int, 'bool': bool, 'list': list, 'dict': dict}


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a contract record: its Ansible type, whether it must be given, the values it may take."""

    name: str
    type: str = 'str'
    required: bool = False
    choices: tuple = ()


def _spec(fields: typing.Iterable[Field]) -> dict:
    """The argument-spec suboptions of ``fields`` (all optional for Ansible: from_dict names what is missing)."""
    return {field.name: {'type': field.type} for field in fields}


def _invalid_at(path: str, problem: str) -> ExupError:
    return ExupError('the controller-host contract (version %d) is not met: %s %s' % (CONTRACT_VERSION, path, problem), code='contract_invalid', field=path)


def _invalid(where: str, field: str, problem: str) -> ExupError:
    return _invalid_at('%s.%s' % (where, field), problem)


def _has_type(value: typing.Any, name: str) -> bool:
    """The Ansible type ``name``, exactly: a bool is no int here."""
    return isinstance(value, _TYPES[name]) and not (name == 'int' and isinstance(value, bool))


def _check_value(where: str, field: Field, value: typing.Any) -> typing.Any:
    if value is None:
        if field.required:
            raise _invalid(where, field.name, 'is missing')
        return None
    if not _has_type(value, field.type):
        raise _invalid(where, field.name, 'must be of type %s, not %s' % (field.type, type(value).__name__))
    if field.name == 'sha256' and not SHA256_PATTERN.match(value):
        raise _invalid(where, field.name, 'must be 64 lowercase hexadecimal digits')
    if field.name == 'size' and value < 0:
        raise _invalid(where, field.name, 'must not be negative')
    if field.choices and value not in field.choices:
        raise _invalid(where, field.name, 'must be one of %s, not %r' % (', '.join(field.choices), value))
    return value


def _read_fields(fields: tuple, data: typing.Any, where: str) -> dict:
    """The ``fields`` read from ``data``, checked; unknown keys are refused (nothing is dropped silently)."""
    if not isinstance(data, dict):
        raise _invalid_at(where, 'must be a mapping, not %s' % type(data).__name__)
    unknown = sorted(set(data) - {field.name for field in fields})
    if unknown:
        raise _invalid(where, unknown[0], 'is not a field of the contract')
    return {field.name: _check_value(where, field, data.get(field.name)) for field in fields}


_PACKAGE_FIELDS = (
    Field('package_id', required=True),
    Field('sha256', required=True),
    Field('size', 'int'),
    # the bytes travel inline (base64) or as a file already on the host; else the inbox or the bundle has them
    Field('content'),
    Field('src'),
    # or the host fetches it from the repository service: a pool ticket URL (003 §1.3), with the CA (PEM) of an https one
    Field('url'),
    Field('url_ca'),
)


@dataclasses.dataclass(frozen=True)
class AgentPackageRef:
    """The package exup_host phase agent_install gets (option ``package``)."""

    FIELDS: typing.ClassVar[tuple] = _PACKAGE_FIELDS
    package_id: str
    sha256: str
    size: int | None = None
    content: str | None = None
    src: str | None = None
    url: str | None = None
    url_ca: str | None = None

    @classmethod
    def from_dict(cls, data: typing.Any, where: str = 'package') -> AgentPackageRef:
        return cls(**_read_fields(cls.FIELDS, data, where))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_ITEM_FIELDS = (
    Field('package_id', required=True),
    Field('module_id', required=True),
    Field('action', required=True, choices=ACTIONS),
    Field('from_version'),
    Field('to_version'),
    Field('reboot_required', 'bool'),
    Field('release_date'),
    # the plan's command is informative only: the host runs the verified package's own (docs/agent.md)
    Field('command'),
) + _PACKAGE_FIELDS[1:]


@dataclasses.dataclass(frozen=True)
class HostItem:
    """One ordered plan item exup_host phase start gets (option ``items``): a plan item plus the package's file."""

    FIELDS: typing.ClassVar[tuple] = _ITEM_FIELDS
    package_id: str
    module_id: str
    action: str
    from_version: str | None = None
    to_version: str | None = None
    reboot_required: bool | None = None
    release_date: str | None = None
    command: str | None = None
    sha256: str = ''
    size: int | None = None
    content: str | None = None
    src: str | None = None
    url: str | None = None
    url_ca: str | None = None

    @classmethod
    def from_dict(cls, data: typing.Any, where: str = 'items[0]') -> HostItem:
        return cls(**_read_fields(cls.FIELDS, data, where))

    @classmethod
    def for_plan(cls, plan_item: dict, sha256: str, size: int) -> HostItem:
        """The item for one ``plan.PlanItem.as_dict()`` row and its stored file."""
        row = {key: value for key, value in plan_item.items() if key != 'path'}  # the stepping-stone path is the plan's, not the host's
        return cls.from_dict(dict(row, sha256=sha256, size=size), where='plan item %s' % plan_item.get('package_id'))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def host_items(items: typing.Iterable[dict | HostItem] | None) -> list[dict]:
    """``items`` (dicts or HostItem) checked and as the dicts exup_host receives."""
    return [(item if isinstance(item, HostItem) else HostItem.from_dict(item, 'items[%d]' % index)).as_dict() for index, item in enumerate(items or [])]


def agent_package(package: dict | AgentPackageRef | None) -> dict:
    """``package`` (a dict or an AgentPackageRef) checked and as the dict exup_host receives."""
    return (package if isinstance(package, AgentPackageRef) else AgentPackageRef.from_dict(package)).as_dict()


#: exup_host's argument spec fragments (its DOCUMENTATION lists the same suboptions; a unit test compares them)
ITEM_OPTIONS = _spec(_ITEM_FIELDS)
PACKAGE_OPTIONS = _spec(_PACKAGE_FIELDS)
HOST_ARGUMENT_SPEC = {
    'contract_version': {'type': 'int'},
    'items': {'type': 'list', 'elements': 'dict', 'default': [], 'options': ITEM_OPTIONS},
    'package': {'type': 'dict', 'options': PACKAGE_OPTIONS},
}


# ---------------------------------------------------------------------------- the version of the contract
def version_mismatch(controller_version: int | None, host_version: int = CONTRACT_VERSION) -> ExupError | None:
    """``contract_mismatch`` when the two sides speak different contract versions; None when they agree.

    A controller that states no version (a direct call of the internal module in a test or by hand) is taken at its word.
    """
    if controller_version is None or controller_version == host_version:
        return None
    return ExupError(
        'the controller speaks version %s of the controller-host contract and the host module version %s: use the same '
        'exup.fleet collection version on the controller for the action plugins and exup_host (update or reinstall '
        'the collection, then run the task again)' % (controller_version, host_version),
        code='contract_mismatch',
        controller_contract_version=controller_version,
        host_contract_version=host_version,
    )


# ---------------------------------------------------------------------------- the installed agent's records
_FORMAT_LINE = re.compile(r'^JOURNAL_VERSION\s*=\s*(\d+)\s*$', re.MULTILINE)
JOB_STATES = ('queued', 'running', 'finished')
ITEM_STATUSES = (runner.WAITING, runner.RUNNING, runner.SUCCEEDED, runner.FAILED, runner.CANCELLED)
BLOCKS = ('reboot_required', 'apply_failed')
_UPGRADE = 'install the agent of this collection on the server (exup.fleet.exup_agent state=present), or use the collection the agent came with'


def installed_job_format(runner_text: str | None) -> int | None:
    """The job format the installed runner reads, from its source text; None without a runner.

    The runner states it as ``JOURNAL_VERSION``; the first agents, which did not, read format 1.
    """
    if runner_text is None:
        return None
    found = _FORMAT_LINE.search(runner_text)
    return int(found.group(1)) if found else 1


def agent_mismatch(agent_version: str | None, agent_format: int | None, job_format: int = runner.JOURNAL_VERSION) -> ExupError | None:
    """``agent_version_mismatch`` when the installed agent cannot read the jobs this collection writes.

    A newer agent reads older job formats, so only an agent whose format is older than the collection's is refused.
    """
    if agent_format is None or agent_format >= job_format:
        return None
    return ExupError(
        'the exup agent %s on this server reads job format %d, and this collection writes format %d: the agent is older '
        'than the collection; %s' % (agent_version or '(unknown version)', agent_format, job_format, _UPGRADE),
        code='agent_version_mismatch',
        agent_version=agent_version,
        agent_job_format=agent_format,
        job_format=job_format,
    )


def _record_mismatch(what: str, problem: str, agent_version: str | None, **details: typing.Any) -> ExupError:
    return ExupError(
        '%s %s: it was written by an exup agent (installed: %s) or a collection of another version than this collection '
        '(job format %d) reads; %s' % (what, problem, agent_version or 'none', runner.JOURNAL_VERSION, _UPGRADE),
        code='agent_version_mismatch',
        agent_version=agent_version,
        **details,
    )


def _need(record: dict, key: str, kind: type, what: str, agent_version: str | None, allow_empty: bool = False, **details: typing.Any) -> typing.Any:
    value = record.get(key)
    if not isinstance(value, kind) or (kind is str and not value and not allow_empty):
        problem = 'has no %s' % key if value is None else 'has a %s of type %s' % (key, type(value).__name__)
        raise _record_mismatch(what, problem, agent_version, field=key, **details)
    return value


def check_journal(journal: typing.Any, agent_version: str | None = None) -> dict:
    """The journal of a job, checked for what the host and the controller read; returned as it is.

    Fields read with a default (pids, outcome, cause, ...) may be missing; the ones that say what the job is and how
    far it got may not. A journal of a newer job format is refused too.
    """
    if not isinstance(journal, dict):
        raise _record_mismatch('a job journal on this server', 'is not a JSON object', agent_version)
    job_id = _need(journal, 'job_id', str, 'a job journal on this server', agent_version)
    what = 'the journal of job %s' % job_id
    fmt = journal.get('version', 1)
    if not isinstance(fmt, int) or fmt > runner.JOURNAL_VERSION:
        raise _record_mismatch(what, 'has job format %r' % (fmt,), agent_version, job_id=job_id, field='version')
    state = journal.get('state')
    if state not in JOB_STATES:
        raise _record_mismatch(what, 'has a state %r that is not one of %s' % (state, ', '.join(JOB_STATES)), agent_version, job_id=job_id, field='state')
    for index, item in enumerate(_need(journal, 'items', list, what, agent_version, job_id=job_id)):
        _check_item(item, '%s, item %d,' % (what, index), agent_version, job_id)
    return journal


def _check_item(item: typing.Any, what: str, agent_version: str | None, job_id: str) -> None:
    if not isinstance(item, dict):
        raise _record_mismatch(what, 'is not a JSON object', agent_version, job_id=job_id)
    for key in ('package_id', 'module_id', 'action', 'status'):
        _need(item, key, str, what, agent_version, job_id=job_id)
    if item['status'] not in ITEM_STATUSES:
        raise _record_mismatch(
            what, 'has a status %r that is not one of %s' % (item['status'], ', '.join(ITEM_STATUSES)), agent_version, job_id=job_id, field='status'
        )
    if item['status'] == runner.SUCCEEDED:
        _need(item, 'reboot_required', bool, what, agent_version, job_id=job_id)


def check_state(state: typing.Any, agent_version: str | None = None) -> dict:
    """The agent's ``state.json`` (per module: previous version, block with its boot id), checked; returned as it is."""
    what = "the agent's state.json on this server"
    if not isinstance(state, dict):
        raise _record_mismatch(what, 'is not a JSON object', agent_version)
    modules = state.get('modules', {})
    if not isinstance(modules, dict):
        raise _record_mismatch(what, 'has modules of type %s' % type(modules).__name__, agent_version, field='modules')
    for module_id, record in modules.items():
        where = '%s, module %s,' % (what, module_id)
        if not isinstance(record, dict):
            raise _record_mismatch(where, 'is not a JSON object', agent_version, field='modules')
        if record.get('block') is not None:
            if record['block'] not in BLOCKS:
                raise _record_mismatch(where, 'has a block %r that is not one of %s' % (record['block'], ', '.join(BLOCKS)), agent_version, field='block')
            _need(record, 'boot_id', str, where, agent_version, allow_empty=True)  # '' where the host has no boot id
    return state


# ---------------------------------------------------------------------------- exup_host's answers
# What the action plugins read from an answer; each record is checked field by field (a key not declared is refused),
# so a hostile or mistaken host is contract_invalid naming the field, never a KeyError or TypeError on the controller.
MODULE_STATE_FIELDS = (
    Field('module_id', required=True),
    Field('current'),
    Field('previous'),
    Field('block', choices=BLOCKS),
    Field('staged'),
    Field('activity'),
)
FACT_FIELDS = (
    Field('model', required=True),
    Field('os', required=True),
    Field('vendor'),
    Field('os_pretty_name'),
    Field('virtual_machine'),
    Field('boot_id'),
)
AGENT_FIELDS = (Field('installed', 'bool', required=True), Field('version'), Field('folder'))
BLOCKER_FIELDS = (Field('code', required=True), Field('msg', required=True), Field('library'), Field('package'))  # library, package: missing_library
JOB_ITEM_FIELDS = (
    Field('package_id', required=True),
    Field('module_id', required=True),
    Field('action', required=True, choices=ACTIONS),
    Field('status', required=True, choices=ITEM_STATUSES),
    Field('from_version'),
    Field('to_version'),
    Field('reboot_required', 'bool'),
    Field('release_date'),
    Field('cause'),
    Field('exit_code', 'int'),
    Field('output_tail'),
    Field('outcome'),
)
JOB_FIELDS = (
    Field('job_id', required=True),
    Field('state', required=True, choices=JOB_STATES),
    Field('done', 'int', required=True),
    Field('total', 'int', required=True),
    Field('recovered', 'bool'),
    Field('runner_lost', 'bool'),
    Field('error'),
    Field('items', 'list', required=True),
)


def _record(fields: tuple) -> _Check:
    def check(value: typing.Any, where: str) -> None:
        _read_fields(fields, value, where)

    return check


def _job(value: typing.Any, where: str) -> None:
    _read_fields(JOB_FIELDS, value, where)
    _list_of(_record(JOB_ITEM_FIELDS))(value['items'], where + '.items')


def _mapping_of(check_value: _Check) -> _Check:
    def check(value: typing.Any, where: str) -> None:
        if not isinstance(value, dict):
            raise _invalid_at(where, 'must be a mapping, not %s' % type(value).__name__)
        for key, entry in value.items():
            check_value(entry, '%s[%s]' % (where, key))

    return check


def _list_of(check_value: _Check) -> _Check:
    def check(value: typing.Any, where: str) -> None:
        if not isinstance(value, list):
            raise _invalid_at(where, 'must be a list, not %s' % type(value).__name__)
        for index, entry in enumerate(value):
            check_value(entry, '%s[%d]' % (where, index))

    return check


def _of_type(name: str) -> _Check:
    def check(value: typing.Any, where: str) -> None:
        if not _has_type(value, name):
            raise _invalid_at(where, 'must be of type %s, not %s' % (name, type(value).__name__))

    return check


_STATES = _mapping_of(_record(MODULE_STATE_FIELDS))
_AGENT = _record(AGENT_FIELDS)
#: (key, required, check) of a job's answer (start, status, cancel)
_JOB_ANSWER = (('job', True, _job), ('versions_after', False, _mapping_of(_of_type('str'))), ('modules', False, _STATES), ('agent', False, _AGENT))
#: per phase, the top-level keys the controller reads and how each is checked; other keys (Ansible's own, informative ones) pass
ANSWERS: dict[str, tuple[tuple[str, bool, _Check], ...]] = {
    'inventory': (
        ('facts', True, _record(FACT_FIELDS)),
        ('modules', True, _STATES),
        ('agent', True, _AGENT),
        ('inbox', True, _list_of(_of_type('str'))),
        ('active_job', False, _job),
        ('last_job', False, _job),
        ('prerequisites', True, _list_of(_record(BLOCKER_FIELDS))),
    ),
    'start': _JOB_ANSWER,
    'status': _JOB_ANSWER,
    'cancel': _JOB_ANSWER + (('changed', True, _of_type('bool')),),
    'agent_install': (('agent', True, _AGENT),),
    'agent_uninstall': (('agent', True, _AGENT),),
    'logs': (('files', True, _list_of(_of_type('str'))),),
}


def check_answer(phase: str, answer: dict) -> dict:
    """exup_host's (successful) answer to ``phase``, checked for what the controller reads; returned as it is.

    A missing key, a value of the wrong type or a key a record does not declare is ``contract_invalid`` naming the field.
    """
    for key, required, check in ANSWERS.get(phase, ()):
        where = '%s answer.%s' % (phase, key)
        if answer.get(key) is not None:
            check(answer[key], where)
        elif required:
            raise _invalid_at(where, 'is missing')
    return answer
