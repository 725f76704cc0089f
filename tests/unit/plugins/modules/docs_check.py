# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read every module's DOCUMENTATION and RETURN (with its doc fragments) and compare a result with its RETURN (issue 12 item 4)."""

from __future__ import annotations

import ast
import importlib
import pathlib
import re

import yaml

COLLECTION = pathlib.Path(__file__).resolve().parents[4]
MODULES_DIR = COLLECTION / 'plugins' / 'modules'
#: keys every result may carry that a RETURN does not document (Ansible's own)
COMMON_KEYS = frozenset(
    {'changed', 'failed', 'msg', 'diff', 'invocation', 'warnings', 'deprecations', 'exception', 'skipped', 'skip_reason', '_ansible_no_log'}
)
#: a placeholder key of a mapping whose keys are data (a module id, a server name): it stands for every key
PLACEHOLDER = re.compile(r'^<[a-z_]+>$')


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


def lacking_contains(returns: dict, where: str = '') -> list[str]:
    """Paths of return values of type dict, or list of dicts, that do not describe their keys with ``contains`` (recursively)."""
    missing = []
    for key, spec in (returns or {}).items():
        path = where + key
        is_records = spec.get('type') == 'dict' or (spec.get('type') == 'list' and spec.get('elements') == 'dict')
        if is_records and not spec.get('contains'):
            missing.append(path)
        if spec.get('contains'):
            missing += lacking_contains(spec['contains'], path + ('[].' if spec.get('type') == 'list' else '.'))
    return missing


def _spec_for(key: str, contains: dict):
    if key in contains:
        return contains[key]
    placeholders = [spec for name, spec in contains.items() if PLACEHOLDER.match(name)]
    return placeholders[0] if placeholders else None


def undocumented(value, spec: dict, where: str) -> list[str]:
    """Paths below ``where`` of keys that ``value`` has and the return spec does not document."""
    contains = spec.get('contains')
    if not contains:
        return []
    found = []
    if isinstance(value, list):
        for index, entry in enumerate(value):
            found += undocumented(entry, {'contains': contains}, '%s[%d]' % (where, index))
        return found
    if not isinstance(value, dict):
        return []
    for key, entry in value.items():
        entry_spec = _spec_for(key, contains)
        if entry_spec is None:
            found.append('%s.%s' % (where, key))
        else:
            found += undocumented(entry, entry_spec, '%s.%s' % (where, key))
    return found


def undocumented_keys(result: dict, returns: dict) -> list[str]:
    """Keys of a module's result (top level and nested) that its RETURN does not document."""
    found = []
    for key, value in result.items():
        if key in COMMON_KEYS:
            continue
        if key not in returns:
            found.append(key)
        else:
            found += undocumented(value, returns[key], key)
    return found
