# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/bmc_apply.yml for real: ansible-playbook against two emulated Redfish BMCs (tests/services/redfish.py).

Two servers, one BMC each, one per wave (apply_serial 1), the reset allowed: the firmware the
emulators report over their own Redfish API must be the newest after the run, and the summary
of the role exup.fleet.rollout must name both servers.
"""

from __future__ import annotations

import yaml

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import ADDED, Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.tests.lab.lab import REPO_ROOT
from ansible_collections.exup.fleet.tests.services.redfish import BmcSystem, RedfishBmc, default_image_check
from ansible_collections.exup.fleet.tests.services.tls import make_tls_files
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah, bmc_helpers as bh
from ansible_collections.exup.fleet.tests.system.test_bmc_path import BMC_PACKAGES, build_bmc_packages

PLAYBOOK = REPO_ROOT / "playbooks" / "bmc_apply.yml"
NEWEST = {"system-bios": "1.20", "bmc-firmware": "2.20"}


def test_bmc_apply_playbook_updates_firmware_in_waves(lab, tmp_path):
    repo, pem = lab.make_repository(tmp_path / "repo")
    added = Repository(str(repo)).add_files(build_bmc_packages(tmp_path / "packages", lab.vendor_key()), KeyRing([lab.vendor_key().public_key]), mode="pinned")
    assert [row["result"] for row in added] == [ADDED] * (len(BMC_PACKAGES) + 1), added
    (tmp_path / "tls").mkdir()
    tls = make_tls_files(tmp_path / "tls")
    bmcs = {}
    try:
        for name, system in (("fw-1", BmcSystem("fw-1")), ("fw-2", BmcSystem("fw-2", bios_version="1.10", bmc_version="2.05"))):
            bmcs[name] = RedfishBmc(system, tls=tls).start()
        hosts = {
            name: {
                "exup_bmc_address": bmc.host,
                "exup_bmc_port": bmc.port,
                "exup_bmc_username": bmc.user,
                "exup_bmc_password": bmc.password,
                "exup_bmc_ca_path": str(bmc.ca_path),
            }
            for name, bmc in bmcs.items()
        }
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"bmc_managed": {"hosts": hosts}}}}))
        extra = {"exup_repository": str(repo), "exup_trusted_keys": [str(pem)], "apply_allow_reboot": True, "apply_serial": 1}
        run = ah.run_playbook(lab, PLAYBOOK, extra, "-i", inventory, timeout=300)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output
        for name, bmc in bmcs.items():
            found = bh.bmc_state(bmc.base_url, str(bmc.ca_path), bmc.user, bmc.password)["firmware"]
            assert set(NEWEST.values()) <= set(found.values()), (name, found, output)
            assert not {"1.00", "1.10", "2.00", "2.05"} & set(found.values()), (name, found)
            assert not [item for item in found if item.endswith("-Pending")], (name, found)
        assert "exup apply to bmc_managed, filter update_available: 2 of 2 server(s) chosen, 0 failed" in output, output
        for name in bmcs:
            assert any(line.strip().strip('",').startswith(name) and "update_available" in line and "rebooted" in line for line in output.splitlines()), output
        for before in (("1.00", "2.00"), ("1.10", "2.05")):  # fw-1, fw-2
            assert f"system-bios {before[0]} -> 1.20 succeeded" in output and f"bmc-firmware {before[1]} -> 2.20 succeeded" in output, output
        recap = ah.recap(output)
        assert set(recap) >= set(bmcs), recap
    finally:
        for bmc in bmcs.values():
            bmc.stop()


def test_bmc_apply_playbook_catches_succeeded_but_unchanged_and_the_budget_holds_back(lab, tmp_path):
    """13.5 through the BMC: fw-1's BMC completes the BIOS update and resets, but keeps the old version (its image check
    "applies" the active version). exup_apply fails it (succeeded_unchanged, an event with via bmc); apply_verify_budget=0
    holds back the second wave: fw-2's firmware is untouched."""
    repo, pem = lab.make_repository(tmp_path / "repo")
    Repository(str(repo)).add_files(build_bmc_packages(tmp_path / "packages", lab.vendor_key()), KeyRing([lab.vendor_key().public_key]), mode="pinned")
    (tmp_path / "tls").mkdir()
    tls = make_tls_files(tmp_path / "tls")

    def bios_unchanged(image, state):
        accepted, version = default_image_check(image, state)
        return (accepted, state.version) if accepted and state.module == "system-bios" else (accepted, version)

    bmcs = {}
    try:
        bmcs["fw-1"] = RedfishBmc(BmcSystem("fw-1"), tls=tls, image_check=bios_unchanged).start()
        bmcs["fw-2"] = RedfishBmc(BmcSystem("fw-2", bios_version="1.10", bmc_version="2.05"), tls=tls).start()
        hosts = {
            name: {
                "exup_bmc_address": bmc.host,
                "exup_bmc_port": bmc.port,
                "exup_bmc_username": bmc.user,
                "exup_bmc_password": bmc.password,
                "exup_bmc_ca_path": str(bmc.ca_path),
            }
            for name, bmc in bmcs.items()
        }
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"bmc_managed": {"hosts": hosts}}}}))
        extra = {"exup_repository": str(repo), "exup_trusted_keys": [str(pem)], "apply_allow_reboot": True, "apply_serial": 1, "apply_verify_budget": 0}
        run = ah.run_playbook(lab, PLAYBOOK, extra, "-i", inventory, timeout=300)
        output = run.stdout + run.stderr
        assert run.returncode != 0, output
        assert {name: ah.recap(output)[name]["failed"] for name in bmcs} == {"fw-1": 1, "fw-2": 0}, output
        first = bh.bmc_state(bmcs["fw-1"].base_url, str(bmcs["fw-1"].ca_path), bmcs["fw-1"].user, bmcs["fw-1"].password)["firmware"]
        assert "1.00" in first.values() and "1.20" not in first.values() and "2.20" in first.values(), (first, output)  # the BMC's own did change
        second = bh.bmc_state(bmcs["fw-2"].base_url, str(bmcs["fw-2"].ca_path), bmcs["fw-2"].user, bmcs["fw-2"].password)
        assert {"1.10", "2.05"} <= set(second["firmware"].values()) and not {"1.20", "2.20"} & set(second["firmware"].values()), (second, output)
        assert "(succeeded_unchanged)" in output and "failed verification through BMC" in output, output
        assert "not applied: the error budget (apply_verify_budget=0) was exceeded in an earlier wave" in output, output
        assert "error budget apply_verify_budget=0: 1 of 1 applied failed, exceeded" in output, output
        found = [detail for code, level, detail in bh.events(repo, "fw-1") if code == "succeeded_unchanged"]
        assert [(item["module_id"], item["version_after"], item["via"]) for item in found] == [("system-bios", "1.00", "bmc")], found
        assert not [code for code, level, detail in bh.events(repo, "fw-2") if code.startswith("apply_")]
    finally:
        for bmc in bmcs.values():
            bmc.stop()
