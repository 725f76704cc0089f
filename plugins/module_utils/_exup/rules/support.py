# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the agent supports a server's model and OS (003 §2.3.2, §3.8): one rule, pure.

The host (``host/agent.py``, the agent package about to be installed) and the
controller (the action plugins, the repository's agent packages) both ask it.
Each side words its blockers as it always has (users and tests match the
messages), so the wording is data: ``HOST``, ``REPOSITORY`` and ``WIZARD``.
"""

from __future__ import annotations

import dataclasses
import typing

if typing.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo

#: the module id of the agent itself (003 Table 6): one definition for the core and the faces
AGENT_MODULE = 'update-agent'


def is_agent(info: PackageInfo) -> bool:
    """A package of the agent itself."""
    return info.module_id == AGENT_MODULE


@dataclasses.dataclass(frozen=True)
class AgentSupport:
    """The models and OSes some agent package(s) support; None: nothing is known, so nothing is refused."""

    models: frozenset[str] | None = None
    systems: frozenset[str] | None = None

    @classmethod
    def of(cls, models: typing.Iterable[str] | None = None, systems: typing.Iterable[str] | None = None) -> AgentSupport:
        return cls(None if models is None else frozenset(models), None if systems is None else frozenset(systems))

    def supports_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    def supports_os(self, os_name: str) -> bool:
        return self.systems is None or os_name in self.systems


def agent_support(infos: typing.Iterable[PackageInfo]) -> AgentSupport:
    """What the agent packages among ``infos`` support together (only those this code can read); unknown when there are none."""
    agents = [info for info in infos if is_agent(info) and info.compatible]
    if not agents:
        return AgentSupport()
    return AgentSupport.of({model for info in agents for model in info.models}, {name for info in agents for name in info.os})


@dataclasses.dataclass(frozen=True)
class Wording:
    """How one side words the blockers: what supports (``subject``), how much it says, which check comes first."""

    subject: str
    detailed: bool
    os_first: bool = False


#: the host, judging the agent package it is asked to install
HOST = Wording('the agent', detailed=True, os_first=True)
#: exup_info (both paths): the blockers listed with the server's other ones
REPOSITORY = Wording('the agent packages in the repository', detailed=False)
#: exup_agent's wizard: the reason it refuses to install
WIZARD = Wording('the agent packages in the repository', detailed=True)


def _model_blocker(wording: Wording, model: str) -> dict:
    suffix = ': this server does not support exup' if wording.detailed else ''
    return {'code': 'unsupported_model', 'msg': 'model %r is not supported by %s%s' % (model, wording.subject, suffix)}


def _os_blocker(wording: Wording, support: AgentSupport, os_name: str, os_pretty_name: str | None) -> dict:
    if not wording.detailed:
        return {'code': 'unsupported_os', 'msg': 'OS %s is not supported by %s' % (os_name, wording.subject)}
    return {
        'code': 'unsupported_os',
        'msg': 'OS %s (%s) is not supported by %s (supported: %s)'
        % (os_name, os_pretty_name or 'unknown', wording.subject, ', '.join(sorted(support.systems or ()))),
    }


def support_blockers(support: AgentSupport, model: str, os_name: str, wording: Wording, os_pretty_name: str | None = None) -> list[dict]:
    """The {code, msg} blockers (unsupported_model, unsupported_os) of a server for ``support``; empty when it is supported."""
    checks = [('model', support.supports_model(model)), ('os', support.supports_os(os_name))]
    if wording.os_first:
        checks.reverse()
    blockers = []
    for what, supported in checks:
        if not supported:
            blockers.append(_model_blocker(wording, model) if what == 'model' else _os_blocker(wording, support, os_name, os_pretty_name))
    return blockers


def package_blocker(info: PackageInfo, model: str, os_name: str) -> dict | None:
    """Why one agent package cannot go on this server (its own targets), or None when it can."""
    if info.targets(model, os_name):
        return None
    return {
        'code': 'unsupported_model' if model not in info.models else 'unsupported_os',
        'msg': 'agent package %s does not support %s on %s: this server does not support exup' % (info.package_id, model, os_name),
    }
