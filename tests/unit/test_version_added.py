# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every plugin's version_added names a release: one in changelogs/changelog.yaml, or galaxy.yml's coming one.

antsibull-changelog lists a plugin under "New Modules" / "New Plugins" of the release its version_added names;
a version that is never released (0.2.0 while galaxy.yml says 0.1.0) leaves it out of every changelog.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = sorted(ROOT.glob("plugins/modules/*.py")) + sorted(ROOT.glob("plugins/inventory/*.py")) + sorted(ROOT.glob("plugins/filter/*.yml"))


def released_versions() -> set:
    changes = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text()) or {}
    return {str(version) for version in (changes.get("releases") or {})}


def coming_version() -> str:
    return str(yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"])


def documentation(path: Path) -> dict:
    if path.suffix == ".yml":
        return yaml.safe_load(path.read_text()).get("DOCUMENTATION") or {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "DOCUMENTATION" for target in node.targets):
            return yaml.safe_load(ast.literal_eval(node.value)) or {}
    return {}


def versions_added(doc: dict, where: str = "") -> list:
    """(where, version) for the plugin and every option that says version_added."""
    found = [(where or "plugin", str(doc["version_added"]))] if "version_added" in doc else []
    for name, option in (doc.get("options") or {}).items():
        if isinstance(option, dict):
            found += versions_added(option, "%s.%s" % (where, name) if where else name)
            found += versions_added({"options": option.get("suboptions") or {}}, "%s.%s" % (where, name) if where else name)
    return found


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda path: path.name)
def test_version_added_is_a_release(path):
    allowed = released_versions() | {coming_version()}
    wrong = [(where, version) for where, version in versions_added(documentation(path)) if version not in allowed]
    assert not wrong, "%s: version_added %s is neither released nor galaxy.yml's %s" % (path.name, wrong, coming_version())


def test_every_plugin_says_version_added():
    missing = [path.name for path in DOC_FILES if "version_added" not in documentation(path)]
    assert not missing
