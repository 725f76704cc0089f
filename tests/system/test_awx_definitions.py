# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""awx/controller.yml (docs/awx.md) against awx.awx's own argument specs, AWX's survey rules and the playbooks.

awx.awx is a Galaxy collection; a reproducible copy reachable from PyPI is the one in the community package
``ansible==11.13.0`` (awx.awx 24.6.1), a wheel pinned by its sha256 below. The first run downloads it with pip
(``--require-hashes``), extracts only ``ansible_collections/awx/awx`` into build/awx-collection/ and removes the
wheel; later runs reuse the extraction (EXUP_AWX_WHEEL may name a wheel already downloaded, for an offline machine).

Each awx.awx module builds its argument spec in main(): a subprocess imports the module with
ControllerModule.__init__ patched to record that spec and stop, then every entry of the definitions is checked with
ansible-core's ArgumentSpecValidator. Surveys follow AWX's rules for a survey spec (awx/api/views
JobTemplateSurveySpec._validate_spec_data and awx/api/templates/api/job_template_survey_spec.md): name, description,
a non-empty spec list whose items have question_name, variable (unique), type among AWX's seven and a boolean
required, a default of the question's type, choices holding a multiple choice's default. And every survey variable
must be one the playbook reads (its own text, its roles' meta/argument_specs.yml, the apply_/uninstall_ names the
rollout role reads through rollout_option_prefix), with the same choices as the role declares, so that a renamed
variable fails here.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.exup.fleet.tests.lab.lab import REPO_ROOT

ANSIBLE_VERSION = "11.13.0"
AWX_VERSION = "24.6.1"
WHEEL_SHA256 = "7f1c9c6a6026ff214d9240647e4d2b019b2a9d4c7a2bc733932bcf92af80ab04"
CACHE = REPO_ROOT / "build" / "awx-collection" / f"ansible-{ANSIBLE_VERSION}"
DEFINITIONS = REPO_ROOT / "awx" / "controller.yml"
CONFIGURE = REPO_ROOT / "playbooks" / "awx_configure.yml"
#: the definitions' lists and the awx.awx module each list is for
LISTS = {
    "exup_awx_credential_types": "credential_type",
    "exup_awx_projects": "project",
    "exup_awx_job_templates": "job_template",
    "exup_awx_schedules": "schedule",
}
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}

CAPTURE = r"""
import importlib, json, sys
from ansible_collections.awx.awx.plugins.module_utils import controller_api

class Captured(Exception):
    pass

def record(self, argument_spec=None, *args, **kwargs):
    raise Captured(argument_spec)

controller_api.ControllerModule.__init__ = record
specs = {}
for name in sys.argv[1:]:
    module = importlib.import_module("ansible_collections.awx.awx.plugins.modules." + name)
    try:
        module.main()
    except Captured as captured:
        spec = captured.args[0]
    # (fallback holds functions; no definition uses the options that have one)
    specs[name] = {key: {k: v for k, v in value.items() if k != "fallback"} for key, value in spec.items()}
print(json.dumps(specs))
"""


def _extract(wheel: Path) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert digest == WHEEL_SHA256, f"{wheel}: sha256 {digest}, pinned {WHEEL_SHA256}"
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith("ansible_collections/awx/awx/"):
                archive.extract(member, CACHE)
    manifest = json.loads((CACHE / "ansible_collections/awx/awx/MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == AWX_VERSION, manifest["collection_info"]
    (CACHE / "sha256").write_text(digest + "\n")


@pytest.fixture(scope="module")
def awx_specs() -> dict:
    if not (CACHE / "sha256").is_file() or (CACHE / "sha256").read_text().strip() != WHEEL_SHA256:
        CACHE.mkdir(parents=True, exist_ok=True)
        given = os.environ.get("EXUP_AWX_WHEEL")
        if given:
            _extract(Path(given))
        else:
            download = CACHE / "download"
            requirement = CACHE / "requirement.txt"
            requirement.write_text(f"ansible=={ANSIBLE_VERSION} --hash=sha256:{WHEEL_SHA256}\n")
            pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:", "--require-hashes"]
            subprocess.run([*pip, "-r", str(requirement), "-d", str(download)], check=True, timeout=600)
            wheel = download / f"ansible-{ANSIBLE_VERSION}-py3-none-any.whl"
            _extract(wheel)
            wheel.unlink()
            download.rmdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(CACHE), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-c", CAPTURE, *LISTS.values()], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def definitions() -> dict:
    return yaml.safe_load(DEFINITIONS.read_text())


def test_every_definition_passes_the_awx_module_argument_spec(awx_specs, definitions):
    assert set(awx_specs["job_template"]) >= {"survey_spec", "survey_enabled", "ask_inventory_on_launch", "credentials", "execution_environment"}
    checked = 0
    for key, module in LISTS.items():
        assert definitions[key], key
        validator = ArgumentSpecValidator(awx_specs[module])
        for entry in definitions[key]:
            params = dict(entry)
            if module in ("project", "job_template"):
                params.setdefault("organization", definitions["exup_awx_organization"])
            result = validator.validate(params)
            assert not result.error_messages, (module, entry.get("name"), result.error_messages)
            checked += 1
    assert checked >= 6 + 1 + 2 + 1


def test_a_definition_the_awx_module_refuses_fails_here(awx_specs):
    """The check itself: an unknown option, a wrong type and a wrong choice are refused."""
    validator = ArgumentSpecValidator(awx_specs["job_template"])
    result = validator.validate({"name": "x", "survey_enabled": "maybe", "job_type": "walk", "ask_everything_on_launch": True})
    text = " ".join(result.error_messages)
    assert "ask_everything_on_launch" in text and "survey_enabled" in text and "job_type" in text, text


def test_job_templates_cover_every_job_and_existing_playbooks(definitions):
    templates = {entry["playbook"]: entry for entry in definitions["exup_awx_job_templates"]}
    wanted = {"sync", "scan", "apply", "agent_install", "uninstall", "bmc_apply", "remote_batch"}
    assert {f"playbooks/{name}.yml" for name in wanted} == set(templates)
    for playbook, entry in templates.items():
        assert (REPO_ROOT / playbook).is_file(), playbook
        assert entry["ask_inventory_on_launch"] and entry["ask_credential_on_launch"], playbook
    names = {entry["name"] for entry in definitions["exup_awx_job_templates"]}
    for schedule in definitions["exup_awx_schedules"]:
        assert schedule["unified_job_template"] in names, schedule
        assert re.match(r"DTSTART[:;].* RRULE:FREQ=", schedule["rrule"]), schedule
    for credential_type in definitions["exup_awx_credential_types"]:
        fields = {field["id"] for field in credential_type["inputs"]["fields"]}
        assert set(credential_type["inputs"]["required"]) <= fields, credential_type["name"]
        used = set(re.findall(r"\{\{\s*(\w+)", json.dumps(credential_type["injectors"]))) - {"tower"}
        assert used <= fields, (credential_type["name"], used - fields)
    project = definitions["exup_awx_projects"][0]
    assert project["scm_url"].startswith("https://"), "AWX clones the project; a local path is not reachable from a job"


def _survey_problems(survey: dict) -> list[str]:
    """AWX's rules for a survey spec (see the module docstring)."""
    problems = [f"{key} is missing" for key in ("name", "description", "spec") if key not in survey]
    items = survey.get("spec")
    if not isinstance(items, list) or not items:
        return [*problems, "spec must be a non-empty list"]
    seen: set = set()
    for item in items:
        label = item.get("variable", "?")
        problems += [f"{label}: {key} is missing" for key in ("question_name", "variable", "type", "required") if key not in item]
        if label in seen:
            problems.append(f"{label}: variable repeated")
        seen.add(label)
        kind = item.get("type")
        if kind not in SURVEY_TYPES:
            problems.append(f"{label}: type {kind!r} is not one of AWX's")
        if not isinstance(item.get("required"), bool):
            problems.append(f"{label}: required must be true or false")
        default = item.get("default")
        if kind in ("text", "textarea", "password") and default is not None and not isinstance(default, str):
            problems.append(f"{label}: default must be text")
        if kind == "integer" and default is not None and (not isinstance(default, int) or isinstance(default, bool)):
            problems.append(f"{label}: default must be an integer")
        if kind == "float" and default is not None and not isinstance(default, (int, float)):
            problems.append(f"{label}: default must be a number")
        if kind in ("integer", "float") and default is not None and not item.get("min", default) <= default <= item.get("max", default):
            problems.append(f"{label}: default outside min..max")
        if kind in ("multiplechoice", "multiselect"):
            choices = item.get("choices")
            if isinstance(choices, str):
                choices = choices.split("\n")
            if not isinstance(choices, list) or not choices or not all(isinstance(choice, str) for choice in choices):
                problems.append(f"{label}: choices must be a non-empty list of text")
            elif default not in (None, "") and not set(str(default).split("\n")) <= set(choices):
                problems.append(f"{label}: default {default!r} is not one of the choices")
    return problems


def _role_options(role: str) -> dict:
    specs = yaml.safe_load((REPO_ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options: dict = {}
    for entry in specs.values():
        options.update(entry.get("options") or {})
    return options


def _readable(playbook: Path) -> dict:
    """Variable name -> its role option (or {} when only the playbook's text reads it)."""
    text = playbook.read_text()
    plays = yaml.safe_load(text)
    names: dict = {}
    for expression in re.findall(r"\{\{(.*?)\}\}", text, re.DOTALL):
        names.update({word: {} for word in re.findall(r"\b[a-z_][a-z0-9_]*\b", expression)})
    for play in plays:
        names.update({key: {} for key in (play.get("vars") or {})})
        roles = [role["role"] if isinstance(role, dict) else role for role in play.get("roles") or []]
        roles += [task["ansible.builtin.import_role"]["name"] for task in play.get("tasks") or [] if "ansible.builtin.import_role" in task]
        prefix = (play.get("vars") or {}).get("rollout_option_prefix")
        for role in roles:
            options = _role_options(role.split(".")[-1])
            names.update(options)
            if prefix:  # roles/rollout/defaults/main.yml: rollout_<name> is read from <prefix>_<name>
                names.update({f"{prefix}_{key[len('rollout_') :]}": value for key, value in options.items()})
    return names


def test_surveys_follow_awx_rules_and_ask_for_variables_the_playbooks_read(definitions):
    for entry in definitions["exup_awx_job_templates"]:
        assert entry["survey_enabled"] is True, entry["name"]
        survey = entry["survey_spec"]
        assert not _survey_problems(survey), (entry["name"], _survey_problems(survey))
        readable = _readable(REPO_ROOT / entry["playbook"])
        for item in survey["spec"]:
            variable = item["variable"]
            assert variable in readable, f"{entry['name']}: the survey asks for {variable}, which {entry['playbook']} does not read"
            option = readable[variable]
            if item["type"] == "multiplechoice" and option.get("choices"):
                assert set(item["choices"]) == {str(choice) for choice in option["choices"]}, (entry["name"], variable)
            if item["type"] == "multiplechoice" and option.get("type") == "bool":
                assert set(item["choices"]) == {"true", "false"}, (entry["name"], variable)
        for variable in entry.get("extra_vars") or {}:
            assert variable in readable, (entry["name"], variable)


def test_a_survey_the_rules_refuse_and_a_drifted_variable_fail_here():
    bad = {
        "name": "x",
        "spec": [
            {"question_name": "q", "variable": "v", "type": "choice", "required": "yes"},
            {"question_name": "q", "variable": "v", "type": "multiplechoice", "required": True, "choices": ["a"], "default": "b"},
        ],
    }
    problems = " | ".join(_survey_problems(bad))
    for expected in ("description is missing", "type 'choice'", "required must be", "variable repeated", "'b' is not one of the choices"):
        assert expected in problems, problems
    assert "apply_status_filter" in _readable(REPO_ROOT / "playbooks" / "apply.yml")
    assert "apply_status_filtr" not in _readable(REPO_ROOT / "playbooks" / "apply.yml")
    assert "agent_license_accepted" in _readable(REPO_ROOT / "playbooks" / "agent_install.yml")


def test_schedules_run_the_remote_batch_and_the_compliance_report_with_variables_the_playbooks_read(definitions):
    """The remote batch (003 §2.1.8) and the scheduled compliance report (issue 13.2) are AWX schedules: each rrule is
    one dateutil (which AWX uses) parses, in UTC, and each extra_data variable is one the template's playbook reads and
    the template accepts on launch (ask_variables_on_launch or a survey question), a survey answer among its choices."""
    from dateutil import rrule  # type: ignore[import-untyped]  # pylint: disable=import-outside-toplevel  # only this test needs it

    templates = {entry["name"]: entry for entry in definitions["exup_awx_job_templates"]}
    schedules = {entry["name"]: entry for entry in definitions["exup_awx_schedules"]}
    by_playbook = {templates[entry["unified_job_template"]]["playbook"]: entry for entry in schedules.values()}
    assert {"playbooks/sync.yml", "playbooks/remote_batch.yml", "playbooks/scan.yml"} <= set(by_playbook)
    assert by_playbook["playbooks/scan.yml"]["extra_data"]["scan_report_dir"]
    assert by_playbook["playbooks/remote_batch.yml"]["extra_data"]["remote_batch_download"] == "true"
    for name, schedule in schedules.items():
        start, rule = schedule["rrule"].split(" ", 1)
        assert start.startswith("DTSTART:") and start.endswith("Z"), name  # UTC: the time does not move with the controller's zone
        runs = rrule.rrulestr(rule.removeprefix("RRULE:"), dtstart=datetime.datetime.strptime(start[8:], "%Y%m%dT%H%M%SZ"))
        assert runs[0] and runs[1] > runs[0], name
        template = templates[schedule["unified_job_template"]]
        readable = _readable(REPO_ROOT / template["playbook"])
        questions = {item["variable"]: item for item in template["survey_spec"]["spec"]}
        for variable, value in (schedule.get("extra_data") or {}).items():
            assert variable in readable, f"{name}: extra_data {variable} is not read by {template['playbook']}"
            assert template.get("ask_variables_on_launch") or variable in questions, (name, variable)
            if variable in questions and questions[variable]["type"] == "multiplechoice":
                assert value in questions[variable]["choices"], (name, variable, value)
    assert "remote_batch_download" in _readable(REPO_ROOT / "playbooks" / "remote_batch.yml")
    assert "remote_batch_downlaod" not in _readable(REPO_ROOT / "playbooks" / "remote_batch.yml")


def test_awx_configure_forwards_every_option_the_definitions_use(definitions):
    """Each key of an entry reaches its awx.awx task in playbooks/awx_configure.yml (nothing silently dropped)."""
    tasks = yaml.safe_load(CONFIGURE.read_text())[0]["tasks"]
    forwarded = {}
    for task in tasks:
        for key, value in task.items():
            if key.startswith("awx.awx."):
                forwarded[key.removeprefix("awx.awx.")] = (set(value), task["loop"])
    for key, module in LISTS.items():
        options, loop = forwarded[module]
        assert key in loop, (module, loop)
        for entry in definitions[key]:
            assert set(entry) <= options, (module, entry["name"], set(entry) - options)


def test_awx_configure_parses_with_awx_awx_installed(awx_specs):
    """ansible-playbook --syntax-check with the extracted awx.awx on the collections path (the modules resolve)."""
    paths = os.pathsep.join([os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(REPO_ROOT / "build" / "collections")), str(CACHE)])
    playbook = Path(sys.executable).parent / "ansible-playbook"
    run = subprocess.run(
        [str(playbook), "--syntax-check", str(CONFIGURE)],
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=paths),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
