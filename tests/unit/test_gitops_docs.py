# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/gitops.md says only what the collection has: its YAML and JSON blocks parse, every playbook it runs or
names exists, every variable its commands, vars files and AWX extra_vars set is one the playbooks (or the rollout
role they run, through rollout_option_prefix apply) read, and every module and playbook name it gives exists.

Variables count as read when they appear outside comments in playbooks/**/*.yml, or, for apply_<name>, when
rollout_<name> is an option of roles/rollout/meta/argument_specs.yml.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "gitops.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
VARIABLE = re.compile(r"^[a-z][a-z0-9_]*$")
NAMESPACED = re.compile(r"\bexup\.fleet\.([a-z_][a-z0-9_]*)\b")
PLAYBOOK_PATH = re.compile(r"\bplaybooks/([a-z_][a-z0-9_]*)\.yml\b")
# the prefixes of the collection's own variables: a backticked name with one of them must be read somewhere
OWN_PREFIXES = ("exup_", "apply_", "plan_", "scan_", "rollout_")


def blocks(text: str, *languages: str) -> list:
    return [body for language, body in FENCE.findall(text) if language in languages]


def _uncommented(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def read_variables() -> set:
    """Names the playbooks and the rollout role read (see the module docstring)."""
    words = set()
    for path in sorted((ROOT / "playbooks").rglob("*.yml")):
        words.update(re.findall(r"[a-z][a-z0-9_]*", _uncommented(path)))
    spec = yaml.safe_load((ROOT / "roles" / "rollout" / "meta" / "argument_specs.yml").read_text())
    for entry in spec["argument_specs"].values():
        for name in entry.get("options") or {}:
            words.add(name)
            if name.startswith("rollout_"):
                words.add("apply_" + name[len("rollout_") :])
    return words


def playbook_names() -> set:
    return {path.stem for path in (ROOT / "playbooks").glob("*.yml")}


def collection_names() -> set:
    """What exup.fleet.<name> may name: playbooks, modules, plugins and roles."""
    names = playbook_names() | {path.name for path in (ROOT / "roles").iterdir() if path.is_dir()}
    for kind in ("modules", "action", "filter", "inventory", "lookup"):
        folder = ROOT / "plugins" / kind
        if folder.is_dir():
            names.update(path.stem for path in folder.iterdir() if path.suffix in (".py", ".yml"))
    return names


def code_literals() -> set:
    """Quoted snake_case strings of the plugins: the error codes and result keys (plan_stale, ...)."""
    found = set()
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        found.update(re.findall(r"['\"]([a-z][a-z0-9]*_[a-z0-9_]+)['\"]", path.read_text()))
    return found


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _values_under(value, key: str):
    if isinstance(value, dict):
        for name, item in value.items():
            if name == key:
                yield item
            yield from _values_under(item, key)
    elif isinstance(value, list):
        for item in value:
            yield from _values_under(item, key)


def _mappings_under(value, key: str):
    if isinstance(value, dict):
        for name, item in value.items():
            if name == key and isinstance(item, dict):
                yield item
            yield from _mappings_under(item, key)
    elif isinstance(value, list):
        for item in value:
            yield from _mappings_under(item, key)


def vars_files(text: str) -> dict:
    """The vars files the page shows: YAML blocks whose first line is '# <path>.yml' (a colon may follow)."""
    files = {}
    for body in blocks(text, "yaml"):
        first = body.splitlines()[0] if body.strip() else ""
        found = re.match(r"#\s*([\w./-]+\.yml)\b", first)
        if found:
            files[found.group(1)] = yaml.safe_load(body)
    return files


def commands(text: str) -> list:
    """Every ansible-playbook command of the page: console lines (with continuations) and YAML strings."""
    lines = []
    for body in blocks(text, "console"):
        lines += body.replace("\\\n", " ").splitlines()
    for body in blocks(text, "yaml"):
        for value in _strings(yaml.safe_load(body)):
            lines += value.replace("\\\n", " ").splitlines()
    return [shlex.split(line.strip()) for line in lines if line.strip().startswith("ansible-playbook")]


def problems(text: str) -> list:
    """What the page gets wrong; empty when it says only what exists."""
    found = []
    for language in ("yaml", "json"):
        for number, body in enumerate(blocks(text, language)):
            try:
                yaml.safe_load(body) if language == "yaml" else json.loads(body)
            except (yaml.YAMLError, ValueError) as exc:
                found.append(f"{language} block {number} does not parse: {exc}")
    if found:
        return found
    variables, playbooks, names, files = read_variables(), playbook_names(), collection_names(), vars_files(text)
    runs = commands(text)
    if not runs:
        found.append("no ansible-playbook command found")
    for argv in runs:
        words = iter(argv[1:])
        for word in words:
            if word in ("-e", "--extra-vars"):
                value = next(words, "")
                if value.startswith("@"):
                    if value[1:] not in files:
                        found.append(f"{' '.join(argv)}: the page shows no vars file {value[1:]}")
                    names_set = list(files.get(value[1:]) or {})
                elif value.startswith("{"):
                    names_set = list(json.loads(value))
                else:
                    names_set = [value.split("=", 1)[0]]
                found += [f"{' '.join(argv)}: no playbook reads {name}" for name in names_set if name not in variables]
            elif word in ("-i", "--inventory", "-l", "--limit"):
                next(words, "")
            elif word.startswith("exup.fleet.") and word[len("exup.fleet.") :] not in playbooks:
                found.append(f"{' '.join(argv)}: no playbook {word}")
    for path, content in files.items():
        if "group_vars/" in path or path.startswith("rollout/"):
            found += [f"{path}: no playbook reads {name}" for name in content or {} if name not in variables]
    for body in blocks(text, "yaml"):
        for key in ("script", "before_script", "after_script"):  # GitLab: a line with ': ' in it becomes a mapping
            for script in _values_under(yaml.safe_load(body), key):
                found += [f"{key}: not a command string: {line!r}" for line in script if not isinstance(line, str)]
        for key in ("run",):  # GitHub Actions
            found += [f"run: not a command string: {line!r}" for line in _values_under(yaml.safe_load(body), key) if not isinstance(line, str)]
        for extra in _mappings_under(yaml.safe_load(body), "extra_vars"):
            found += [f"extra_vars: no playbook reads {name}" for name in extra if name not in variables]
        for value in _strings(yaml.safe_load(body)):
            if value.startswith("exup.fleet.") and value[len("exup.fleet.") :] not in playbooks and "import_playbook" in body:
                found.append(f"import_playbook: no playbook {value}")
    found += [f"no playbooks/{name}.yml" for name in sorted(set(PLAYBOOK_PATH.findall(text))) if name not in playbooks]
    found += [f"no exup.fleet.{name}" for name in sorted(set(NAMESPACED.findall(text))) if name not in names]
    literals = code_literals()
    for name in sorted(set(re.findall(r"`([a-z][a-z0-9_]*)`", text))):
        if name.startswith(OWN_PREFIXES) and name not in variables and name not in names and name not in literals:
            found.append(f"`{name}`: neither a variable the playbooks read, a name of the collection nor a code of its plugins")
    return found


def test_gitops_doc_names_only_what_exists():
    text = DOC.read_text()
    assert blocks(text, "yaml") and blocks(text, "json"), "docs/gitops.md lost its examples"
    assert problems(text) == []


def test_gitops_doc_shows_both_steps_and_the_refusal():
    text = DOC.read_text()
    runs = [argv for argv in commands(text) if len(argv) > 1]
    used = {word for argv in runs for word in argv if word.startswith("exup.fleet.")}
    assert {"exup.fleet.plan", "exup.fleet.apply_plan", "exup.fleet.scan"} <= used, used
    for argv in runs:
        if {"exup.fleet.plan", "exup.fleet.apply_plan"} & set(argv):
            plan_files = [word for word in argv if word.startswith("plan_file=")]
            assert plan_files and all(re.match(r'plan_file="?\$', word) for word in plan_files), argv  # absolute: from $PWD or CI
    codes = set(re.findall(r"code='([a-z_]+)'|'(plan_[a-z_]+)'", (ROOT / "plugins" / "module_utils" / "_exup" / "rules" / "locked_plan.py").read_text()))
    stale = {code for pair in codes for code in pair if code}
    assert "plan_stale" in stale and "plan_stale" in text
    assert "exup_baseline" in text and "exup_locked_plan" in text
    assert "approval_node" in text and "awx.awx.workflow_job_template_node" in text


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("```console\nansible-playbook -i inventory exup.fleet.plan -e plan_fiel=/tmp/p.json\n```\n", "no playbook reads plan_fiel"),
        ("```console\nansible-playbook -i inventory exup.fleet.locked_apply -e target=managed\n```\n", "no playbook exup.fleet.locked_apply"),
        ("```console\nansible-playbook exup.fleet.scan -e '{\"scan_reports\": \"r\"}'\n```\n", "no playbook reads scan_reports"),
        ("```console\nansible-playbook exup.fleet.scan -e @vars.yml\n```\n", "the page shows no vars file vars.yml"),
        (
            "```yaml\n# rollout/x.yml\napply_seriall: 2\n```\n```console\nansible-playbook exup.fleet.apply -e @rollout/x.yml\n```\n",
            "no playbook reads apply_seriall",
        ),
        ("```yaml\nscript:\n  - ansible-playbook exup.fleet.plan: -e x\n```\n", "script: not a command string"),
        ("```yaml\nsteps: [unclosed\n```\n", "yaml block 0 does not parse"),
        ("```json\n{\"format\": 1,}\n```\n", "json block 0 does not parse"),
        (
            "```yaml\n- awx.awx.workflow_job_template:\n    extra_vars: {plan_path: x}\n```\n```console\nansible-playbook exup.fleet.scan\n```\n",
            "no playbook reads plan_path",
        ),
        ("See `playbooks/locked.yml` and `exup.fleet.exup_plan`.\n```console\nansible-playbook exup.fleet.scan\n```\n", "no playbooks/locked.yml"),
        ("See `exup.fleet.exup_plan`.\n```console\nansible-playbook exup.fleet.scan\n```\n", "no exup.fleet.exup_plan"),
        ("Refused with `plan_outdated`.\n```console\nansible-playbook exup.fleet.scan\n```\n", "`plan_outdated`: neither"),
    ],
)
def test_the_check_finds_what_does_not_exist(snippet, expected):
    assert any(expected in problem for problem in problems(snippet)), problems(snippet)
