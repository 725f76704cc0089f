# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The README demo's managed-servers story (scripts/demo_lab.sh, step 8 of scripts/demo.sh) run as it is, on a lab
of its own (about 35 s): a baseline as group vars, a scan with its compliance report (every server fails), the agent,
a rolling apply with restarts, the report again (every server passes), an apply with nothing left to do."""

from __future__ import annotations

import json
import os
import re
import subprocess
from xml.etree import ElementTree

from ansible_collections.exup.fleet.tests.lab.lab import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "demo_lab.sh"
MANAGED = ["r120h-1", "r120h-2", "t120h-1"]


def test_demo_lab_reports_before_and_after_the_rolling_apply(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    reports = {}
    for when in ("before", "after"):
        folder = tmp_path / "reports" / when
        assert sorted(path.name for path in folder.iterdir()) == ["compliance.html", "compliance.json", "compliance.xml"], when
        reports[when] = json.loads((folder / "compliance.json").read_text())
        assert sorted(row["host"] for row in reports[when]["servers"]) == MANAGED, reports[when]
    before, after = reports["before"]["summary"], reports["after"]["summary"]
    assert (before["fail"], before["pass"]) == (3, 0), before  # lab hosts start on BIOS 1.0, BMC 2.00 ...
    assert (after["pass"], after["fail"], after["unknown"]) == (3, 0, 0), after
    assert after["compliance_percent"] > before["compliance_percent"]
    junit = ElementTree.parse(tmp_path / "reports" / "after" / "compliance.xml").getroot()
    assert not [case for case in junit.iter("testcase") if case.find("failure") is not None]
    # the rolling apply: a canary wave, then the others; every server restarted and ends on the newest packages
    assert output.count("PLAY [Apply update packages, one wave at a time]") >= 3 + 1, output[-6000:]  # 3 waves, then 1
    assert "exup apply to managed, filter update_available: 3 of 3 server(s) chosen, 0 failed" in output
    for host in MANAGED:
        assert re.search(rf'"{host}\s+update_available\s+latest\s+rebooted"', output), output[-6000:]
    assert "exup scan of managed: 3 server(s), 0 not reached; agent_not_installed 3" in output
    assert "exup scan of managed: 3 server(s), 0 not reached; latest 3" in output
    assert "before the apply: pass 0, fail 3, unknown 0 of 3 server(s): 0.0% compliant" in output
    assert "after the apply : pass 3, fail 0, unknown 0 of 3 server(s): 100.0% compliant" in output
    assert _lab_down(tmp_path), "scripts/demo_lab.sh left its lab running"


def _lab_down(directory) -> bool:
    """The script stops its lab on exit: lab.py status says it is down (exit 1)."""
    status = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "python"), str(REPO_ROOT / "tests" / "lab" / "lab.py"), "status", "--dir", str(directory / "lab")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return status.returncode == 1
