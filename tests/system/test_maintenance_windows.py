# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Maintenance windows enforced by exup_apply on the lab and an emulated BMC (docs/maintenance-windows.md).

Two hosts: on one the window closes in 2 minutes and the apply is expected to take 10, so nothing
starts (and the host's versions stay as they were); on the other the window is open for hours and
the apply runs.
"""

from __future__ import annotations

import datetime

import pytest
import yaml

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.tests.lab.lab import REPO_ROOT, Lab
from ansible_collections.exup.fleet.tests.services.redfish import BmcSystem, RedfishBmc
from ansible_collections.exup.fleet.tests.services.tls import make_tls_files
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah, bmc_helpers as bh
from ansible_collections.exup.fleet.tests.system.test_bmc_path import build_bmc_packages

pytest.importorskip("icalendar")
pytest.importorskip("recurring_ical_events")


def calendar(start: datetime.datetime, end: datetime.datetime) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//exup//lab//EN\r\nBEGIN:VEVENT\r\nUID:lab-window\r\n"
        f"DTSTART:{start.strftime(stamp)}\r\nDTEND:{end.strftime(stamp)}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


AGENTS = ah.AGENT_INSTALL_PLAY_FLEET


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


def test_bmc_apply_playbook_passes_the_group_windows(lab, tmp_path):
    """playbooks/bmc_apply.yml with the group's exup_maintenance_windows: outside the window no firmware moves, the run is green."""
    repo, pem = lab.make_repository(tmp_path / "repo")
    Repository(str(repo)).add_files(build_bmc_packages(tmp_path / "packages", lab.vendor_key()), KeyRing([lab.vendor_key().public_key]), mode="pinned")
    (tmp_path / "tls").mkdir()
    bmc = RedfishBmc(BmcSystem("fw-1"), tls=make_tls_files(tmp_path / "tls")).start()
    try:
        before = bh.bmc_state(bmc.base_url, str(bmc.ca_path), bmc.user, bmc.password)["firmware"]
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        host = {
            "exup_bmc_address": bmc.host,
            "exup_bmc_port": bmc.port,
            "exup_bmc_username": bmc.user,
            "exup_bmc_password": bmc.password,
            "exup_bmc_ca_path": str(bmc.ca_path),
        }
        closed = [calendar(now + datetime.timedelta(hours=5), now + datetime.timedelta(hours=7))]
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"bmc_managed": {"hosts": {"fw-1": host}, "vars": {"exup_maintenance_windows": closed}}}}}))
        extra = {"exup_repository": str(repo), "exup_trusted_keys": [str(pem)], "apply_allow_reboot": True}
        run = ah.run_playbook(lab, REPO_ROOT / "playbooks" / "bmc_apply.yml", extra, "-i", inventory, "-v", timeout=300)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output
        assert "outside every maintenance window; the next window long enough starts" in output, output
        assert bh.bmc_state(bmc.base_url, str(bmc.ca_path), bmc.user, bmc.password)["firmware"] == before
    finally:
        bmc.stop()
