# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The supported ansible-core floor (``requires_ansible`` in meta/runtime.yml) is the release the compat step tests
(the ansible-core pin in requirements-compat.txt), and at least 2.19 (issue 12 item 5)."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

COLLECTION = pathlib.Path(__file__).resolve().parents[2]
#: the issue's minimum: ansible-core 2.19 (the last release that runs on Python 3.11)
MINIMUM = (2, 19)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split('.'))


def requires_floor(runtime_text: str) -> tuple[int, ...]:
    """The lower bound of ``requires_ansible``: exactly one ``>=X.Y[.Z]``, other clauses only upper bounds."""
    spec = yaml.safe_load(runtime_text).get('requires_ansible')
    if not isinstance(spec, str):
        raise ValueError('meta/runtime.yml has no requires_ansible string')
    lower = []
    for clause in (c.strip() for c in spec.split(',')):
        match = re.fullmatch(r'(>=|<|<=|!=)\s*(\d+(?:\.\d+){1,2})', clause)
        if not match:
            raise ValueError(f'requires_ansible clause {clause!r} is not >=, <, <= or != a version')
        if match.group(1) == '>=':
            lower.append(_version(match.group(2)))
    if len(lower) != 1:
        raise ValueError(f'requires_ansible {spec!r} needs exactly one >= lower bound')
    return lower[0]


def compat_pin(pins_text: str) -> tuple[int, ...]:
    """The exact ``ansible-core==X.Y.Z`` pin of requirements-compat.txt."""
    pins = re.findall(r'^\s*ansible-core\s*==\s*(\d+\.\d+\.\d+)\s*(?:#.*)?$', pins_text, re.MULTILINE)
    if len(pins) != 1:
        raise ValueError(f'requirements-compat.txt needs exactly one ansible-core==X.Y.Z pin, found {pins}')
    return _version(pins[0])


def floor_problem(runtime_text: str, pins_text: str) -> str | None:
    """Why the floor and the compat pin disagree, or None when they agree."""
    floor, pin = requires_floor(runtime_text), compat_pin(pins_text)
    if floor[:2] != pin[:2]:
        return f'requires_ansible floor {floor} is not the release the compat step tests ({pin})'
    if pin < floor:
        return f'the compat pin {pin} is older than the requires_ansible floor {floor}'
    if floor[:2] < MINIMUM:
        return f'the floor {floor} is below the minimum {MINIMUM}'
    return None


def test_floor_is_the_compat_release() -> None:
    runtime = (COLLECTION / 'meta' / 'runtime.yml').read_text(encoding='utf-8')
    pins = (COLLECTION / 'requirements-compat.txt').read_text(encoding='utf-8')
    assert floor_problem(runtime, pins) is None
    assert requires_floor(runtime)[:2] >= MINIMUM


@pytest.mark.parametrize(
    ('runtime', 'pins', 'expected'),
    [
        ('requires_ansible: ">=2.19.0"\n', 'ansible-core==2.19.14\n', None),
        ('requires_ansible: ">=2.19.0,<2.23"\n', 'x==1\nansible-core==2.19.14  # oldest\n', None),
        ('requires_ansible: ">=2.18.0"\n', 'ansible-core==2.19.14\n', 'is not the release'),
        ('requires_ansible: ">=2.20.0"\n', 'ansible-core==2.19.14\n', 'is not the release'),
        ('requires_ansible: ">=2.19.5"\n', 'ansible-core==2.19.4\n', 'older than'),
        ('requires_ansible: ">=2.17.0"\n', 'ansible-core==2.17.14\n', 'below the minimum'),
    ],
)
def test_floor_problem(runtime: str, pins: str, expected: str | None) -> None:
    problem = floor_problem(runtime, pins)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


@pytest.mark.parametrize(
    ('runtime', 'pins'),
    [
        ('requires_ansible: "2.19.0"\n', 'ansible-core==2.19.14\n'),
        ('other: 1\n', 'ansible-core==2.19.14\n'),
        ('requires_ansible: ">=2.19.0"\n', 'ansible-core>=2.19\n'),
        ('requires_ansible: ">=2.19.0"\n', 'ansible-core==2.19.14\nansible-core==2.20.1\n'),
    ],
)
def test_unreadable_specs_fail(runtime: str, pins: str) -> None:
    with pytest.raises(ValueError):
        floor_problem(runtime, pins)
