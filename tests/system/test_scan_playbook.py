# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/scan.yml (the AWX scan job, docs/awx.md) for real: exup_info through two emulated Redfish BMCs and one
BMC that does not answer; the summary counts each status, names the updates, and a second run with
scan_fail_on_error fails only the server that could not be queried. Nothing changes on the BMCs."""

from __future__ import annotations

import json
import socket

import yaml

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import ADDED, Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.tests.lab.lab import REPO_ROOT
from ansible_collections.exup.fleet.tests.services.redfish import BmcSystem, RedfishBmc
from ansible_collections.exup.fleet.tests.services.tls import make_tls_files
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah, bmc_helpers as bh
from ansible_collections.exup.fleet.tests.system.test_bmc_path import BMC_PACKAGES, build_bmc_packages

PLAYBOOK = REPO_ROOT / "playbooks" / "scan.yml"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_scan_playbook_summarizes_statuses_and_changes_nothing(lab, tmp_path):
    repo, pem = lab.make_repository(tmp_path / "repo")
    added = Repository(str(repo)).add_files(build_bmc_packages(tmp_path / "packages", lab.vendor_key()), KeyRing([lab.vendor_key().public_key]), mode="pinned")
    assert [row["result"] for row in added] == [ADDED] * (len(BMC_PACKAGES) + 1), added
    (tmp_path / "tls").mkdir()
    tls = make_tls_files(tmp_path / "tls")
    bmcs = {}
    try:
        for name in ("scan-1", "scan-2"):
            bmcs[name] = RedfishBmc(BmcSystem(name), tls=tls).start()
        hosts = {
            name: {
                "ansible_connection": "local",
                "exup_bmc_address": bmc.host,
                "exup_bmc_port": bmc.port,
                "exup_bmc_username": bmc.user,
                "exup_bmc_password": bmc.password,
                "exup_bmc_ca_path": str(bmc.ca_path),
            }
            for name, bmc in bmcs.items()
        }
        hosts["scan-gone"] = dict(hosts["scan-1"], exup_bmc_port=_closed_port())
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"bmc_managed": {"hosts": hosts}}}}))
        before = {name: bh.bmc_state(bmc.base_url, str(bmc.ca_path), bmc.user, bmc.password)["firmware"] for name, bmc in bmcs.items()}
        extra = {"target": "bmc_managed", "scan_via": "bmc", "exup_repository": str(repo), "exup_trusted_keys": [str(pem)]}
        baseline = {"name": "estate", "modules": {"system-bios": {"version": "newest", "rule": "exact"}, "bmc-firmware": {"rule": "ignore"}}}
        reports = tmp_path / "reports"
        run = ah.run_playbook(lab, PLAYBOOK, dict(extra, exup_baseline=baseline, scan_report_dir=str(reports)), "-i", inventory, timeout=300)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output
        report = json.loads((reports / "compliance.json").read_text())
        verdicts = {row["host"]: row["verdict"] for row in report["servers"]}
        assert verdicts == {"scan-1": "fail", "scan-2": "fail", "scan-gone": "unknown"}, report  # the BIOS is not the newest
        assert report["summary"]["groups"][0]["group"] == "bmc_managed" and "TASK [Give the compliance counts to AWX]" in output, output
        assert (reports / "compliance.html").exists() and (reports / "compliance.xml").exists()
        assert "exup scan of bmc_managed: 3 server(s), 1 not reached; communication_failed 1, update_available 2" in output, output
        for name in bmcs:
            assert any(line.strip().strip('",').startswith(f"{name}: update_available (") and "updates: " in line for line in output.splitlines()), output
        assert any(line.strip().strip('",').startswith("scan-gone: communication_failed") for line in output.splitlines()), output
        after = {name: bh.bmc_state(bmc.base_url, str(bmc.ca_path), bmc.user, bmc.password)["firmware"] for name, bmc in bmcs.items()}
        assert after == before

        strict = ah.run_playbook(lab, PLAYBOOK, dict(extra, scan_fail_on_error=True, scan_register=False), "-i", inventory, timeout=300)
        recap = ah.recap(strict.stdout + strict.stderr)
        assert strict.returncode != 0
        assert recap["scan-gone"]["failed"] == 1 and recap["scan-1"]["failed"] == 0 and recap["scan-2"]["failed"] == 0, recap
    finally:
        for bmc in bmcs.values():
            bmc.stop()
