# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A managed server whose Python cannot import lxml, over ssh against the demo lab (issue 12 item 10).

t120h-1 (SLES 15) gets its own interpreter: a wrapper in its host root that puts a folder before the
Python's own paths (PYTHONPATH) whose ``lxml.py`` raises ImportError, as a server without python3-lxml
would. ``exup_agent state: query`` lists the missing library in ``prerequisites`` with the package for
SLES and that Python's version; an install fails with ``missing_library`` naming the package, and the
host's files and the repository's servers are as they were. r120h-2, with the lab's own interpreter,
lists no missing library.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

BLOCKED_HOST = "t120h-1"
PLAIN_HOST = "r120h-2"
WRAPPER = "/opt/exup-lab/nolxml/python"
#: SLES 15's package of lxml for the lab's interpreter (never its system Python 3.6): python313-lxml for Python 3.13
SLES_PACKAGE = "python%d%d-lxml" % sys.version_info[:2]


def agent_task(name: str, body: str = "", ignore_errors: bool = False) -> str:
    return f"- name: exup_agent ({name})\n  exup.fleet.exup_agent:\n{body}  register: r_{name}\n" + ("  ignore_errors: true\n" if ignore_errors else "")


SCENARIOS = {
    BLOCKED_HOST: "".join(
        [
            ah.snapshot_task("snap_before"),
            agent_task("query", "    state: query\n"),
            agent_task("install", "    license_accepted: true\n", ignore_errors=True),
            ah.snapshot_task("snap_after"),
        ]
    ),
    PLAIN_HOST: agent_task("query", "    state: query\n"),
}


def block_lxml(root, interpreter: str) -> None:
    """Make the host's Python unable to import lxml: a wrapper interpreter whose PYTHONPATH shadows it (paths on the host)."""
    shim = WRAPPER.rsplit("/", 1)[0] + "/shim"  # on the host
    (root / shim.lstrip("/")).mkdir(parents=True)
    (root / shim.lstrip("/") / "lxml.py").write_text('raise ImportError("No module named lxml (not installed on this server)")\n')
    wrapper = root / WRAPPER.lstrip("/")
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={shim}${{PYTHONPATH:+:$PYTHONPATH}} exec {interpreter} "$@"\n')
    wrapper.chmod(0o755)


@pytest.fixture(scope="module")
def ran(lab, tmp_path_factory):
    work = tmp_path_factory.mktemp("missing-library")
    repo, pem = lab.make_repository(work / "repo")
    block_lxml(lab.host_root(BLOCKED_HOST), lab.view.interpreter)
    inventory = work / "blocked.yml"  # the lab's inventory plus this host's interpreter
    inventory.write_text(json.dumps({"all": {"hosts": {BLOCKED_HOST: {"ansible_python_interpreter": WRAPPER}}}}))
    servers_before = ah.servers(repo)
    run = ah.Scenarios(work / "scenarios", SCENARIOS)
    argv = run.command({"repos": {"default": str(repo)}, "pem": str(pem)}) + ["-i", str(lab.inventory_path), "-i", str(inventory)]
    done = subprocess.run(argv, env=lab.env(), capture_output=True, text=True, timeout=300, check=False)
    return {"results": run.results(), "output": done.stdout + done.stderr, "repo": repo, "servers_before": servers_before}


def library_blockers(items: list) -> list:
    return [item for item in items if item["code"] == "missing_library"]


def test_query_lists_the_missing_library_beside_the_other_prerequisites(ran):
    query = ran["results"][BLOCKED_HOST]["query"]
    assert not query.get("failed"), ran["output"][-3000:]
    assert query["status"] == "not_installed" and query["facts"]["os"] == "sles15"
    (blocker,) = library_blockers(query["prerequisites"])
    assert (blocker["library"], blocker["package"]) == ("lxml", SLES_PACKAGE)
    assert f"zypper install {SLES_PACKAGE}" in blocker["msg"] and "pip install lxml" in blocker["msg"]
    assert "not installed on this server" in blocker["msg"]  # the import error as the server's Python raised it


def test_install_fails_with_missing_library_and_changes_nothing(ran):
    results = ran["results"][BLOCKED_HOST]
    install = results["install"]
    assert install["failed"] and install["error"] == "missing_library", install
    assert install["status"] == "failed"
    assert SLES_PACKAGE in install["msg"] and "lxml" in install["msg"]
    assert [item["library"] for item in library_blockers(install["blockers"])] == ["lxml"]
    assert "Traceback" not in json.dumps(install)
    assert results["snap_after"] == results["snap_before"]
    assert not results["snap_after"]["agent_dir"]
    assert ah.servers(ran["repo"]) == ran["servers_before"]  # not registered


def test_a_host_with_lxml_lists_no_missing_library(ran):
    query = ran["results"][PLAIN_HOST]["query"]
    assert not query.get("failed"), query
    assert library_blockers(query["prerequisites"]) == []
