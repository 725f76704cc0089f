# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read every module's DOCUMENTATION and RETURN (with its doc fragments) and compare a result with its RETURN (issue 12 item 4)."""

from __future__ import annotations

import ast
import importlib
import pathlib
import typing

import yaml

COLLECTION = pathlib.Path(__file__).resolve().parents[4]
MODULES_DIR = COLLECTION / 'plugins' / 'modules'
#: keys every result may carry that a RETURN does not document (Ansible's own)
COMMON_KEYS = frozenset(
    {'changed', 'failed', 'msg', 'diff', 'invocation', 'warnings', 'deprecations', 'exception', 'skipped', 'skip_reason', '_ansible_no_log'}
)
#: Returns whose keys are data (module ids, models): they cannot list their keys under ``contains`` (validate-modules
#: refuses placeholder keys), so they describe their values and give a ``sample``, which results are compared with.
MAPPINGS = {
    'exup_apply': {'skipped_modules', 'staged', 'versions_after'},
    'exup_host': {'modules', 'versions_after'},
    'exup_info': {'modules', 'newest'},
    'exup_locked_plan': {'plan.servers', 'plan.not_planned', 'servers'},
    'exup_package': {'rebuilt.events[].detail'},
    'exup_package_info': {'by_component', 'by_model', 'by_model.*', 'events[].detail'},  # by_model.*: its values are mappings too
    'exup_repo_sync': {'events[].detail'},
}
#: keys validate-modules refuses in RETURN (not reachable with Jinja's dot notation): the parent's description names them
UNDOTTABLE = frozenset({'items', 'keys', 'values', 'get', 'update', 'pop'})


def module_names() -> list[str]:
    """Every module of the collection (the files in plugins/modules, whoever added them)."""
    return sorted(path.stem for path in MODULES_DIR.glob('*.py') if not path.name.startswith('_'))


def _constants(path: pathlib.Path) -> dict:
    tree = ast.parse(path.read_text(encoding='utf-8'))
    found = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        if node.targets[0].id in ('DOCUMENTATION', 'RETURN', 'EXAMPLES') and isinstance(node.value, ast.Constant):
            found[node.targets[0].id] = node.value.value
    return found


def fragment(name: str) -> dict:
    """A doc fragment of this collection (``exup.fleet.repository.http`` is the HTTP attribute of repository.py)."""
    parts = name.split('.')
    assert parts[:2] == ['exup', 'fleet'], 'fragment %s is not of this collection' % name
    module = importlib.import_module('ansible_collections.exup.fleet.plugins.doc_fragments.' + parts[2])
    attribute = parts[3].upper() if len(parts) > 3 else 'DOCUMENTATION'
    return yaml.safe_load(getattr(module.ModuleDocFragment, attribute)) or {}


def docs(name: str) -> tuple[dict, dict]:
    """(DOCUMENTATION with its fragments' requirements merged, RETURN) of a module."""
    constants = _constants(MODULES_DIR / (name + '.py'))
    documentation = yaml.safe_load(constants['DOCUMENTATION'])
    returns = yaml.safe_load(constants.get('RETURN') or '') or {}
    requirements = list(documentation.get('requirements') or [])
    for fragment_name in documentation.get('extends_documentation_fragment') or []:
        requirements += fragment(fragment_name).get('requirements') or []
    documentation['requirements'] = requirements
    return documentation, returns


def lacking_contains(returns: dict, where: str = '', mappings: typing.Collection[str] = ()) -> list[str]:
    """Paths of return values of type dict, or list of dicts, that do not describe their keys (recursively).

    ``contains`` describes them; a path in ``mappings`` (keys that are data) needs a dict ``sample`` instead.
    """
    missing = []
    for key, spec in (returns or {}).items():
        path = where + key
        is_records = spec.get('type') == 'dict' or (spec.get('type') == 'list' and spec.get('elements') == 'dict')
        if path + '.*' in mappings or path in mappings:
            if not isinstance(spec.get('sample'), dict) or spec.get('contains'):
                missing.append(path + ' (a mapping: a dict sample, no contains)')
        elif is_records and not spec.get('contains'):
            missing.append(path)
        if spec.get('contains'):
            missing += lacking_contains(spec['contains'], path + ('[].' if spec.get('type') == 'list' else '.'), mappings)
    return missing


def _merged(records) -> dict:
    """One template of the dicts among ``records`` (the union of their keys)."""
    template: dict = {}
    for record in records:
        if isinstance(record, dict):
            template.update(record)
    return template


def _against(value, template, where: str) -> list[str]:
    """Keys of ``value`` (a dict, or lists of dicts inside it) that the sample's ``template`` lacks."""
    if not isinstance(value, dict) or not isinstance(template, dict) or not template:
        return []
    found = []
    for key, entry in value.items():
        if key not in template:
            found.append('%s.%s (not in the sample)' % (where, key))
        elif isinstance(entry, list) and isinstance(template[key], list):
            for index, element in enumerate(entry):
                found += _against(element, _merged(template[key]), '%s.%s[%d]' % (where, key, index))
        else:
            found += _against(entry, template[key], '%s.%s' % (where, key))
    return found


def _mapping(value, sample, where: str, nested: bool = False) -> list[str]:
    """A mapping (keys that are data): each value is compared with the sample's values (``nested``: those are mappings too)."""
    if isinstance(value, list):
        return [found for index, entry in enumerate(value) for found in _mapping(entry, sample, '%s[%d]' % (where, index), nested)]
    if not isinstance(value, dict) or not isinstance(sample, dict):
        return []
    template = _merged(sample.values())
    if nested:
        return [path for key, entry in value.items() for path in _mapping(entry, template, '%s.%s' % (where, key))]
    return [path for key, entry in value.items() for path in _against(entry, template, '%s.%s' % (where, key))]


def undocumented_keys(result: dict, returns: dict, mappings: typing.Collection[str] = ()) -> list[str]:
    """Keys of a module's result (top level and nested) that its RETURN does not document."""
    found = []
    for key, value in result.items():
        if key in COMMON_KEYS:
            continue
        if key not in returns:
            found.append(key)
        else:
            found += _undocumented_at(value, returns[key], key, key, mappings)
    return found


def _undocumented_at(value, spec: dict, where: str, path: str, mappings: typing.Collection[str]) -> list[str]:
    """undocumented() that knows the mappings by their spec path (``events[].detail``)."""
    if path in mappings:
        return _mapping(value, spec.get('sample'), where, nested=path + '.*' in mappings)
    contains = spec.get('contains')
    if not contains:
        return []
    if isinstance(value, list):
        return [
            found
            for index, entry in enumerate(value)
            for found in _undocumented_at(entry, dict(spec, type='dict'), '%s[%d]' % (where, index), path + '[]', mappings)
        ]
    if not isinstance(value, dict):
        return []
    found = []
    for key, entry in value.items():
        if key not in contains:
            if not (key in UNDOTTABLE and 'C(%s)' % key in str(spec.get('description'))):
                found.append('%s.%s' % (where, key))
        else:
            found += _undocumented_at(entry, contains[key], '%s.%s' % (where, key), path + '.' + key, mappings)
    return found
