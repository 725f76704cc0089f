# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Maintenance windows enforced by exup_apply on the lab (docs/maintenance-windows.md).

Two hosts: on one the window closes in 2 minutes and the apply is expected to take 10, so nothing
starts (and the host's versions stay as they were); on the other the window is open for hours and
the apply runs.
"""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.exup.fleet.tests.lab.lab import Lab
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

pytest.importorskip("icalendar")
pytest.importorskip("recurring_ical_events")


def calendar(start: datetime.datetime, end: datetime.datetime) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//exup//lab//EN\r\nBEGIN:VEVENT\r\nUID:lab-window\r\n"
        f"DTSTART:{start.strftime(stamp)}\r\nDTEND:{end.strftime(stamp)}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


AGENTS = """\
---
- name: Install the agent on every host
  hosts: managed
  gather_facts: false
  tasks:
    - name: Install the agent from the repository
      exup.fleet.exup_agent:
        repository: "{{ repos.default }}"
        trusted_keys: ["{{ pem }}"]
        license_accepted: true
        host_root: "{{ exup_host_root }}"
"""


def test_a_closing_window_stops_the_start_an_open_one_applies(tmp_path):
    lab = Lab(tmp_path / "lab", hosts=2)
    lab.up()
    try:
        repo, pem = lab.make_repository(tmp_path / "repo")
        extra = {"repos": {"default": str(repo)}, "pem": str(pem)}
        (tmp_path / "agents.yml").write_text(AGENTS)
        installed = ah.run_playbook(lab, tmp_path / "agents.yml", extra)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        extra["closing"] = [calendar(now - datetime.timedelta(hours=1), now + datetime.timedelta(minutes=2))]
        extra["open"] = [calendar(now - datetime.timedelta(hours=1), now + datetime.timedelta(hours=3))]
        apply = "  exup.fleet.exup_apply:\n    poll_interval: 1\n    maintenance_windows: \"{{ %s }}\"\n%s  register: r_%s\n%s"
        scenarios = ah.Scenarios(
            tmp_path / "scenarios",
            {
                "host001": ah.snapshot_task("snap_before")
                + "- name: check mode\n"
                + apply % ("closing", "    expected_duration: 600\n", "check", "  check_mode: true\n")
                + "- name: closing\n"
                + apply % ("closing", "    expected_duration: 600\n", "closing", "")
                + ah.snapshot_task("snap_after"),
                "host002": "- name: open\n" + apply % ("open", "", "open", ""),
            },
        )
        ran = ah.run_playbook(lab, scenarios.path, extra)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        results = scenarios.results()
        closing, check = results["host001"]["closing"], results["host001"]["check"]
        for refused in (closing, check):
            assert refused["skipped"] and not refused["changed"] and not refused.get("failed"), refused
            assert refused["window_code"] == "window_too_short" and "do not fit" in refused["skipped_reason"]
            assert refused["window"]["expected_seconds"] == 600 and refused["window"]["estimate"]["basis"] == "option"
        assert results["host001"]["snap_before"] == results["host001"]["snap_after"]  # nothing ran
        assert not [code for code, _level, _detail in ah.events(repo, "host001") if code == "apply_started"]
        opened = results["host002"]["open"]
        assert opened["changed"] and not opened.get("skipped"), opened
        assert opened["window"]["may_start"] and opened["window"]["estimate"] == {"seconds": 1800, "basis": "default", "runs": 0}
        assert [row["status"] for row in opened["results"]] and all(row["status"] == "succeeded" for row in opened["results"])
    finally:
        lab.down()
