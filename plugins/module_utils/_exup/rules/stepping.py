# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stepping-stone upgrades: the path through intermediate versions, as a pure function.

A package may declare the lowest version it upgrades from (``UpgradeFromMin`` in
ExUpInfo.xml, ``PackageInfo.upgrade_from_min``). When the target of a module needs
a newer running version than the server has, the module goes through intermediate
versions the repository holds, each installed from a version it accepts.

Reboots between steps. The seed's gating (003 §2.1.5-6) blocks every further
apply while a module is "reboot required": the package that needs a restart is
staged, and the running version stays the old one until the server restarts.
So a step that needs a reboot ends the run for its module: the next step can
only be installed (and its ``upgrade_from_min`` can only be met) once the server
has restarted and runs the staged version. A step without a reboot is active at
once, so the next step may follow in the same run. Every step that needs a
reboot therefore costs one restart (the last one too: its version is active only
after it), and the number of restarts of a path is the number of its steps that
need one.

Choice (``plan_path``): the path with the fewest restarts; ties: the fewest
steps; ties: the lexicographically smallest sequence of version keys (the lowest
stepping stones first), so the answer is deterministic. Only upward steps to
versions above the current one and up to the target are used. Without any
``upgrade_from_min`` on the target (or when the current version already meets it)
the path is the single direct step: old packages keep today's behaviour.

``run_steps`` cuts the path into what one run applies: the steps up to and
including the first one that needs a reboot; the next run (after the restart)
plans again from the version then running.
"""

from __future__ import annotations

import dataclasses
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key

if typing.TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Sequence


class Step(typing.Protocol):
    """What the planner reads of a package (PackageInfo has these)."""

    @property
    def version(self) -> str: ...

    @property
    def upgrade_from_min(self) -> str | None: ...

    @property
    def reboot_required(self) -> bool: ...


S = typing.TypeVar('S', bound=Step)


@dataclasses.dataclass
class Verdict(typing.Generic[S]):
    """The path (``steps`` in order) or, when ``steps`` is None, why there is none."""

    steps: list[S] | None
    reboots: int = 0
    reason: str = ''
    needed: str | None = None  # the lowest running version a step needs that nothing in the repository reaches


def accepts(package: Step, current: str | None) -> bool:
    """The package installs over ``current``: no minimum, nothing installed yet, or the current version meets it."""
    if package.upgrade_from_min is None or current is None:
        return True
    return version_key(current) >= version_key(package.upgrade_from_min)


def plan_path(current: str | None, target: S, packages: Iterable[S]) -> Verdict[S]:
    """The path from ``current`` to ``target`` (a package of the same module), see the module docstring."""
    if accepts(target, current):
        return Verdict([target], int(bool(target.reboot_required)))
    low, high = version_key(current), version_key(target.version)
    nodes: dict[tuple[typing.Any, ...], S] = {}
    for package in packages:
        key = version_key(package.version)
        if low < key < high:
            nodes.setdefault(key, package)  # one package per version: the first given
    nodes[high] = target
    # a DAG (steps go up only): relax in ascending version order
    best: dict[tuple[typing.Any, ...], tuple[int, int, tuple[typing.Any, ...], list[S]]] = {}
    for key in sorted(nodes):
        package = nodes[key]
        cost = int(bool(package.reboot_required))
        options = []
        if accepts(package, current):
            options.append((cost, 1, (key,), [package]))
        for prev_key, (reboots, steps, keys, path) in best.items():
            if prev_key < key and accepts(package, path[-1].version):
                options.append((reboots + cost, steps + 1, keys + (key,), path + [package]))
        if options:
            best[key] = min(options, key=lambda option: option[:3])
    if high in best:
        reboots, _steps, _keys, path = best[high]
        return Verdict(path, reboots)
    return _no_path(current, target, nodes, set(best))


def _no_path(current: str | None, target: S, nodes: dict[tuple[typing.Any, ...], S], reached: set[tuple[typing.Any, ...]]) -> Verdict[S]:
    """Explain the lowest requirement nothing reaches, starting from the target."""
    package = target
    chain: list[str] = []
    while True:
        needed = package.upgrade_from_min
        if needed is None:  # pragma: no cover - not reached, so it has a minimum the current version does not meet
            return Verdict(None, reason='no upgrade path from %s to %s: %s' % (current, target.version, '; '.join(chain) or 'not reached'))
        chain.append('%s needs %s or later first' % (package.version, needed))
        floor, below = version_key(needed), version_key(package.version)
        held = [key for key in sorted(nodes) if floor <= key < below]
        if not held:
            return Verdict(
                None,
                reason='no upgrade path from %s to %s: %s, and the repository holds no version from %s below %s'
                % (current, target.version, '; '.join(chain), needed, package.version),
                needed=needed,
            )
        # none of them is reached (else the package would be): explain the lowest one
        package = nodes[held[0]]
        if accepts(package, current):  # pragma: no cover - a held stone the current version meets is reached
            raise AssertionError('unreachable')


def run_steps(steps: Sequence[S]) -> list[S]:
    """The steps one run applies: up to and including the first that needs a reboot."""
    result: list[S] = []
    for step in steps:
        result.append(step)
        if step.reboot_required:
            break
    return result
