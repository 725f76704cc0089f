# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generation management of 003 §2.2.2, as pure functions (data in, data out).

For every model+OS that a managed server has, the repository keeps the three
newest versions of each module (a "generation" is a distinct version), plus the
package of the version a server ran before its last apply (the previous
generation) if the repository holds it. A multi-model package is kept when any
model+OS keeps it. Ranks count every version the repository knows of, deleted
ones included, so deleting a package never pulls an older one into the window;
this is also why, after the deletion history is cleared, a package 3 or more
generations behind the newest is not downloaded again (§2.2.5).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key

GENERATIONS_KEPT = 3


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A package known to the repository, from the feed or from the store."""

    package_id: str
    module_id: str
    version: str
    models: Sequence[str]
    os: Sequence[str]

    def targets(self, model: str, os_name: str) -> bool:
        return model in self.models and ('any' in self.os or os_name in self.os)


class CandidateLike(Protocol):
    """What generation management reads of a candidate: a Candidate, a CatalogEntry or a PackageInfo as they are."""

    @property
    def package_id(self) -> str: ...
    @property
    def module_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def models(self) -> Sequence[str]: ...
    @property
    def os(self) -> Sequence[str]: ...
    def targets(self, model: str, os_name: str) -> bool: ...


@dataclasses.dataclass(frozen=True)
class Server:
    """A managed server as a manager registered it: its model, OS and module versions."""

    manager_id: str
    name: str
    model: str
    os: str
    modules: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)  # module_id -> {'current': v, 'previous': v}


@dataclasses.dataclass
class GenerationPlan:
    """What generation management decides for a set of candidates and servers."""

    #: package_id -> 0-based generation (0 = newest) for the newest-3 window, best rank over model+OS sets
    generation: dict[str, int]
    #: package_id -> managers whose servers keep it (newest-3 window or previous generation)
    needed_by: dict[str, set[str]]
    #: package_ids kept only as a server's previous generation
    previous: set[str]

    def wanted(self) -> set[str]:
        """Packages inside some newest-3 window: those a sync downloads when missing."""
        return set(self.generation)

    def kept(self, present_ids: Iterable[str]) -> set[str]:
        """Packages a store holding ``present_ids`` keeps: the window plus present previous generations."""
        return self.wanted() | (self.previous & set(present_ids))

    def used_by_other_manager(self, package_id: str, manager_id: str) -> bool:
        return bool(self.needed_by.get(package_id, set()) - {manager_id})


def generation_plan(candidates: Iterable[CandidateLike], servers: Sequence[Server], generations_kept: int = GENERATIONS_KEPT) -> GenerationPlan:
    """Apply the §2.2.2 rule to ``candidates`` (Candidate) for ``servers`` (Server)."""
    by_model: dict[str, list[CandidateLike]] = collections.defaultdict(list)
    for candidate in candidates:
        for model in candidate.models:
            by_model[model].append(candidate)

    managers_by_set: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for server in servers:
        managers_by_set[(server.model, server.os)].add(server.manager_id)

    generation: dict[str, int] = {}
    needed_by: dict[str, set[str]] = collections.defaultdict(set)
    for (model, os_name), managers in managers_by_set.items():
        by_module: dict[str, list[CandidateLike]] = collections.defaultdict(list)
        for candidate in by_model.get(model, ()):
            if 'any' in candidate.os or os_name in candidate.os:
                by_module[candidate.module_id].append(candidate)
        for module_candidates in by_module.values():
            newest_first = sorted({version_key(c.version) for c in module_candidates}, reverse=True)
            rank = {key: index for index, key in enumerate(newest_first[:generations_kept])}
            for candidate in module_candidates:
                index = rank.get(version_key(candidate.version))
                if index is None:
                    continue
                generation[candidate.package_id] = min(index, generation.get(candidate.package_id, index))
                needed_by[candidate.package_id] |= managers

    previous: set[str] = set()
    for server in servers:
        for module_id, state in (server.modules or {}).items():
            previous_version = (state or {}).get('previous')
            if not previous_version:
                continue
            wanted_key = version_key(previous_version)
            for candidate in by_model.get(server.model, ()):
                if candidate.module_id == module_id and version_key(candidate.version) == wanted_key and candidate.targets(server.model, server.os):
                    needed_by[candidate.package_id].add(server.manager_id)
                    if candidate.package_id not in generation:
                        previous.add(candidate.package_id)
    return GenerationPlan(generation=generation, needed_by=dict(needed_by), previous=previous)
