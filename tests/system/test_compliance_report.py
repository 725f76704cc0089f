# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""exup_compliance_report through ansible-playbook, and its HTML page in real headless Chromium (chromedriver).

The results fed in are hand-written in the shape exup_baseline_compliance_info returns (docs/baselines.md):
this test is about the report, not about computing verdicts. The page is opened at a phone's size and a
desktop's; the table, the chart and no sideways scrolling are checked in the rendered layout, and the
screenshots are kept in build/test-artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.tests.system.agent_helpers import program

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "build" / "test-artifacts"
HOSTILE = '<img src=x onerror="document.title=1">'

PLAYBOOK = """\
- name: Write the compliance reports
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Report
      exup.fleet.exup_compliance_report:
        results: "{{ results }}"
        dest: "{{ dest }}"
        formats: "{{ formats | default(omit) }}"
      register: report
    - name: Give the summary
      ansible.builtin.set_stats:
        data:
          exup_compliance: "{{ report.summary }}"
    - name: Save the result
      ansible.builtin.copy:
        content: "{{ report | to_json }}"
        dest: "{{ dest }}/../result.json"
        mode: "0600"
      check_mode: false
"""


def estate(servers: int = 24) -> list:
    results: list[dict] = []
    for number in range(servers):
        group = ("web", "db", "storage-" + "x" * 30)[number % 3]
        verdict = ("pass", "pass", "fail", "unknown")[number % 4]
        modules = [
            {"module": "system-bios", "verdict": verdict, "current": "1.0%d" % number, "target": "1.10", "rule": "not_older_than", "reason": ""},
            {"module": "bmc-firmware", "verdict": "pass", "current": "2.0", "target": "2.0", "rule": "exact", "reason": ""},
        ]
        results.append(
            {
                "host": "server-%02d.example.com" % number,
                "verdict": verdict,
                "groups": [group, "all"],
                "modules": modules,
                "read_at": "2026-12-0%dT10:00:00Z" % (1 + number % 4),
            }
        )
    results[0]["host"] = HOSTILE
    results[0]["modules"][0]["reason"] = HOSTILE * 3
    return results


def run_report(tmp_path: Path, collections_path: Path, extra: dict, *more: str) -> subprocess.CompletedProcess:
    (tmp_path / "report.yml").write_text(PLAYBOOK)
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_SHOW_CUSTOM_STATS="true", ANSIBLE_LOCALHOST_WARNING="false")
    argv = [program("ansible-playbook"), str(tmp_path / "report.yml"), "-e", "@" + str(tmp_path / "extra.json"), *more]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def files_of(dest: Path) -> dict:
    return {path.name: path.read_bytes() for path in sorted(dest.iterdir())} if dest.exists() else {}


def test_reports_are_written_once_and_refused_on_bad_input(tmp_path, collections_path):
    dest = tmp_path / "reports"
    first = run_report(tmp_path, collections_path, {"results": estate(), "dest": str(dest)})
    assert first.returncode == 0, first.stdout + first.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["changed"] is True and sorted(result["written"]) == ["html", "json", "junit"]
    assert result["summary"]["servers"] == 24 and result["summary"]["fail"] == 6 and result["summary"]["unknown"] == 6
    assert '"exup_compliance"' in first.stdout  # set_stats shown as custom stats (what AWX keeps as artifacts)
    written = files_of(dest)
    assert set(written) == {"compliance.html", "compliance.json", "compliance.xml"}

    again = run_report(tmp_path, collections_path, {"results": list(reversed(estate())), "dest": str(dest)})
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((tmp_path / "result.json").read_text())["changed"] is False
    assert files_of(dest) == written

    changed = estate()
    changed[1]["verdict"] = "fail"
    checked = run_report(tmp_path, collections_path, {"results": changed, "dest": str(dest)}, "--check", "--diff")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads((tmp_path / "result.json").read_text())["changed"] is True
    assert files_of(dest) == written  # check mode wrote nothing

    bad = estate()
    bad[5]["modules"][1]["verdict"] = "green"
    refused = run_report(tmp_path, collections_path, {"results": bad, "dest": str(tmp_path / "other")}, "-vvv")
    output = refused.stdout + refused.stderr
    assert refused.returncode == 2, output
    assert '"error": "report_input_invalid"' in output and '"field": "results[5].modules[1].verdict"' in output, output
    assert "must be one of pass, fail, unknown" in output and "Traceback" not in output
    assert not (tmp_path / "other").exists() and files_of(dest) == written


@pytest.fixture(scope="module")
def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-proxy-server"):
        options.add_argument(argument)
    # the Debian chromedriver beside the Debian chromium: selenium-manager never downloads anything
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.parametrize("size", [(390, 844), (1280, 900)], ids=["phone", "desktop"])
def test_html_report_renders_in_chromium(tmp_path, collections_path, chromium, size):
    from selenium.webdriver.common.by import By

    dest = tmp_path / "reports"
    run = run_report(tmp_path, collections_path, {"results": estate(), "dest": str(dest), "formats": ["html"]})
    assert run.returncode == 0, run.stdout + run.stderr
    chromium.set_window_size(*size)
    chromium.get((dest / "compliance.html").as_uri())
    assert chromium.title == "exup.fleet compliance"  # the hostile onerror did not run
    rows = chromium.find_elements(By.CSS_SELECTOR, "#servers tbody tr.server")
    assert len(rows) == 24
    assert all(row.is_displayed() and row.size["height"] > 0 for row in rows[:3])
    assert rows[0].get_attribute("class") == "server fail"  # failing servers first
    assert HOSTILE in chromium.find_element(By.ID, "servers").text  # shown as text, not as markup
    assert not chromium.find_elements(By.CSS_SELECTOR, "#servers img")
    bars = chromium.find_elements(By.CSS_SELECTOR, "#chart g.bar")
    assert [group.get_attribute("data-group") for group in bars] == ["all", "db", "storage-" + "x" * 30, "web"]
    chart = chromium.find_element(By.CSS_SELECTOR, "#chart svg")
    assert chart.size["width"] > size[0] * 0.5 and chart.size["height"] > 0
    rects = chromium.find_elements(By.CSS_SELECTOR, "#chart rect")
    assert {rect.get_attribute("class") for rect in rects} == {"pass", "fail", "unknown"}
    assert all(rect.size["width"] > 0 for rect in rects)
    assert "24 servers, 50.0% compliant" in chromium.find_element(By.ID, "totals").text
    overflow = chromium.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways by %s px at %s" % (overflow, size)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / ("compliance-report-%dx%d.png" % size)
    chromium.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
