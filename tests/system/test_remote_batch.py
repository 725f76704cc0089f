# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote batch (issue 13.3, 003 §2.1.8, Fig. 21) on a lab host with the vendor feed on nginx.

1. playbooks/remote_batch_timer.yml writes the timer and service under a temporary root: systemd-analyze verify
   accepts them, a second run changes nothing, check mode of absent removes nothing. systemd is not PID 1 here, so
   the timer firing is NOT exercised: the service's ExecStart= line itself (read back from the unit as systemd reads
   it, with the environment of its EnvironmentFile=, mode 0600; the unit holds no value) is run against the lab.
   That batch has no download first: it applies the newest the repository held, not the newer package already on
   the feed.
2. remote_batch.yml with the download first, a package published to the feed just before the run and restarts
   allowed: the batch downloads and applies the newest at run time, restarts the server for the BIOS, and the log
   holds remote_batch_started, the sync's events and remote_batch_finished with what was downloaded.
3. A feed that cannot be read: remote_batch_failed (stage download), nothing applied, the run fails; a download
   without a feed, or a bad prefixed rollout setting (remote_batch_serial), is batch_invalid before anything is logged.
4. --check with the download: the plan, nothing downloaded, applied or logged.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time

import pytest
import yaml

from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import publish_feed
from ansible_collections.exup.fleet.tests.lab import packages
from ansible_collections.exup.fleet.tests.lab.lab import MODEL_A, REPO_ROOT, Lab
from ansible_collections.exup.fleet.tests.system import agent_helpers as ah

BATCH = REPO_ROOT / "playbooks" / "remote_batch.yml"
TIMER = REPO_ROOT / "playbooks" / "remote_batch_timer.yml"
HOST = "host001"
# on the feed from the start: newer than the repository's raid-utility 3.1.0
FEED_UTILITY = packages.LabPackage("raid-utility", "3.2.0", "2026-11-02", (MODEL_A,), uninstall=True, tag="feed")
# published just before the batch with the download first runs: "the newest at run time"
LATE_BIOS = packages.LabPackage("system-bios", "1.3", "2026-11-30", (MODEL_A,), reboot=True, downgrade=True, tag="late")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("remote-batch")
    lab = Lab(directory / "lab", hosts=1)
    lab.up()
    try:
        repo, pem = lab.make_repository(directory / "repo")
        play = ah.agent_install_play(directory)
        settings = {"exup_repository": str(repo), "exup_trusted_keys": [str(pem)], "remote_batch_poll_interval": 1}
        installed = ah.run_playbook(lab, play, settings)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        yield lab, repo, settings, directory
    finally:
        lab.down()


def publish(lab, directory, feed_dir, *specs) -> dict:
    built = lab.build_packages(list(specs), out_dir=directory / "vendor-packages")
    publish_feed(str(directory / "vendor-packages"), str(feed_dir), [lab.vendor_key()])
    return built


def batch_events(repo, since: int = 0) -> list:
    rows = ah.query(repo, "SELECT id, code, level, detail FROM events WHERE id > ? ORDER BY id", since)
    return [(code, level, json.loads(detail)) for _id, code, level, detail in rows]


def last_event_id(repo) -> int:
    return ah.query(repo, "SELECT COALESCE(MAX(id), 0) FROM events")[0][0]


def unit_exec_start(service_text: str) -> list:
    """ExecStart= of the service as systemd reads double-quoted words (systemd.service(5)): backslash escapes inside
    the quotes, %% and $$ as one % and $."""
    for line in service_text.splitlines():
        if line.startswith("ExecStart="):
            value = line[len("ExecStart=") :]
            return shlex.split(value.replace("%%", "\0p").replace("$$", "\0d").replace("\0p", "%").replace("\0d", "$"))
    return []


def env_file_values(text: str) -> dict:
    """An EnvironmentFile= as systemd reads its KEY="value" lines (systemd.exec(5)): a backslash escapes \\ " ` $."""
    env = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", ";")):
            key, value = line.split("=", 1)
            assert value[0] == value[-1] == '"', line
            env[key] = re.sub(r'\\([\\"`$])', r"\1", value[1:-1])
    return env


def test_timer_units_verify_idempotent_and_their_command_applies_what_the_repository_held(site, tmp_feed_dir, nginx):
    lab, repo, settings, directory = site
    publish(lab, directory, tmp_feed_dir, FEED_UTILITY)
    root = directory / "controller-root"
    vars_file = directory / "batch.yml"
    vars_file.write_text(yaml.safe_dump(dict(settings, target="managed", remote_batch_name="nightly", remote_batch_modules=["raid-utility"])))
    timer_vars = {
        "remote_batch_name": "nightly",
        "remote_batch_timer_root_dir": str(root),
        "remote_batch_timer_on_calendar": "Mon..Fri *-*-* 02:30:00",
        "remote_batch_timer_inventory": str(lab.inventory_path),
        "remote_batch_timer_vars_file": str(vars_file),
        "remote_batch_timer_playbook": str(BATCH),
        "remote_batch_timer_deadline_seconds": 600,
        "remote_batch_timer_environment": {
            "ANSIBLE_CONFIG": str(lab.config_path),
            "ANSIBLE_COLLECTIONS_PATH": str(lab.collections_path),
            "EXUP_TEST_SECRET": 's3cret "$x` \\',
        },
    }
    first = ah.run_playbook(lab, TIMER, timer_vars)
    assert first.returncode == 0, first.stdout + first.stderr
    assert ah.recap(first.stdout)["localhost"]["changed"] == 5, first.stdout  # two folders, the environment file, two units
    assert "s3cret" not in first.stdout + first.stderr
    assert "Next elapse" in first.stdout  # systemd-analyze calendar showed the next runs
    units = root / "etc" / "systemd" / "system"
    service, timer = units / "exup-remote-batch-nightly.service", units / "exup-remote-batch-nightly.timer"
    verified = subprocess.run(["systemd-analyze", "verify", str(service), str(timer)], capture_output=True, text=True, check=False)
    assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stderr
    timer_lines = timer.read_text().splitlines()
    assert "OnCalendar=Mon..Fri *-*-* 02:30:00" in timer_lines and "Persistent=false" in timer_lines
    service_lines = service.read_text().splitlines()
    assert "RuntimeMaxSec=600" in service_lines and "EnvironmentFile=/etc/exup/remote-batch-nightly.env" in service_lines
    assert not any(line.startswith("Environment=") for line in service_lines) and "s3cret" not in service.read_text()
    env_file = root / "etc" / "exup" / "remote-batch-nightly.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    unit_env = env_file_values(env_file.read_text())
    assert unit_env == timer_vars["remote_batch_timer_environment"], unit_env

    again = ah.run_playbook(lab, TIMER, timer_vars)
    assert again.returncode == 0 and ah.recap(again.stdout)["localhost"]["changed"] == 0, again.stdout
    checked = ah.run_playbook(lab, TIMER, dict(timer_vars, remote_batch_timer_state="absent"), "--check")
    assert checked.returncode == 0 and ah.recap(checked.stdout)["localhost"]["changed"] == 2, checked.stdout  # units, env file
    assert service.is_file() and timer.is_file() and env_file.is_file()
    bad = ah.run_playbook(lab, TIMER, dict(timer_vars, remote_batch_timer_on_calendar="someday"))
    assert bad.returncode != 0 and "someday" in bad.stdout + bad.stderr

    # the timer firing is not exercised (no systemd as PID 1): its service's command is run as systemd would run it
    argv = unit_exec_start(service.read_text())
    assert argv[:2] == [str(REPO_ROOT / ".venv" / "bin" / "ansible-playbook"), "-i"] and argv[-1] == "@" + str(vars_file)
    before = ah.snapshot(lab.host_root(HOST))["versions"]
    mark = last_event_id(repo)
    env = dict({key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}, **unit_env)
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    after = ah.snapshot(lab.host_root(HOST))["versions"]
    assert before.get("raid-utility") != "3.1.0" and after.get("raid-utility") == "3.1.0", (before, after, done.stdout[-3000:])  # the repository's newest
    assert {module: version for module, version in after.items() if module != "raid-utility"} == {m: v for m, v in before.items() if m != "raid-utility"}
    assert FEED_UTILITY.id not in ah.package_ids(repo)  # nothing was downloaded
    logged = batch_events(repo, mark)
    codes = [code for code, _level, _detail in logged]
    assert codes[0] == "remote_batch_started" and codes[-1] == "remote_batch_finished", codes
    assert "repository_update_started" not in codes and "apply_finished" in codes
    result = logged[-1][2]
    assert (result["batch"], result["download"], result["servers"], result["chosen"], result["failed"]) == ("nightly", False, 1, 1, 0)
    assert "downloaded" not in result and time.monotonic() - started < 60


def test_download_first_applies_the_newest_at_run_time_and_restarts(site, tmp_feed_dir, nginx):
    lab, repo, settings, directory = site
    built = publish(lab, directory, tmp_feed_dir, FEED_UTILITY, LATE_BIOS)  # published now, after the batch was set up
    boot_before = ah.snapshot(lab.host_root(HOST))["boot_id"]
    mark = last_event_id(repo)
    batch = dict(
        settings,
        remote_batch_name="with-download",
        remote_batch_download=True,
        remote_batch_feed_url=nginx.url("catalog.json"),
        remote_batch_allow_reboot=True,
        remote_batch_modules=["raid-utility", "system-bios"],
        remote_batch_reboot_timeout=120,
    )
    done = ah.run_playbook(lab, BATCH, batch, "-i", lab.inventory_path)
    assert done.returncode == 0, done.stdout + done.stderr
    snap = ah.snapshot(lab.host_root(HOST))
    assert (snap["versions"]["raid-utility"], snap["versions"]["system-bios"]) == ("3.2.0", "1.3"), snap["versions"]
    assert snap["boot_id"] != boot_before  # restarted for the BIOS (allowed and needed)
    logged = batch_events(repo, mark)
    codes = [code for code, _level, _detail in logged]
    assert codes[0] == "remote_batch_started" and codes[-1] == "remote_batch_finished", codes
    assert codes.index("repository_update_finished") < codes.index("apply_started")
    started, result = logged[0][2], logged[-1][2]
    assert started["download"] is True and started["feed_url"] == nginx.url("catalog.json")
    assert set(result["downloaded"]["added"]) == set(built) == {FEED_UTILITY.id, LATE_BIOS.id}
    assert (result["rebooted"], result["failed"]) == (1, 0) and result["results"][0]["reboot"].startswith("rebooted")


def test_a_download_that_fails_logs_the_batch_failed_and_applies_nothing(site, nginx):
    lab, repo, settings, _directory = site
    before = ah.snapshot(lab.host_root(HOST))
    mark = last_event_id(repo)
    batch = dict(settings, remote_batch_name="broken-feed", remote_batch_download=True, remote_batch_feed_url=nginx.url("missing/catalog.json"))
    done = ah.run_playbook(lab, BATCH, batch, "-i", lab.inventory_path)
    assert done.returncode != 0 and "the download before the apply failed" in done.stdout, done.stdout
    after = ah.snapshot(lab.host_root(HOST))
    assert (after["versions"], after["jobs"]) == (before["versions"], before["jobs"])
    logged = batch_events(repo, mark)
    assert logged[0][0] == "remote_batch_started"
    code, level, detail = logged[-1]
    assert (code, level, detail["stage"]) == ("remote_batch_failed", "error", "download"), logged
    assert not any(code == "apply_started" for code, _level, _detail in logged)

    # settings that cannot work (a download without a feed) stop the batch before it logs or touches anything
    mark = last_event_id(repo)
    done = ah.run_playbook(lab, BATCH, dict(settings, remote_batch_download=True), "-i", lab.inventory_path)
    assert done.returncode != 0 and "batch_invalid" in done.stdout and "remote_batch_feed_url" in done.stdout, done.stdout
    assert last_event_id(repo) == mark and ah.snapshot(lab.host_root(HOST))["jobs"] == before["jobs"]
    # so does a bad prefixed rollout setting: it was checked by the role after the start, which then had no result
    done = ah.run_playbook(lab, BATCH, dict(settings, remote_batch_serial="bogus"), "-i", lab.inventory_path)
    assert done.returncode != 0 and "batch_invalid" in done.stdout and "remote_batch_serial" in done.stdout, done.stdout
    assert last_event_id(repo) == mark and ah.snapshot(lab.host_root(HOST))["jobs"] == before["jobs"]


def test_check_mode_downloads_applies_and_logs_nothing(site, tmp_feed_dir, nginx):
    lab, repo, settings, directory = site
    publish(lab, directory, tmp_feed_dir, packages.LabPackage("raid-utility", "3.3.0", "2026-12-02", (MODEL_A,), uninstall=True, tag="check"))
    before, stored, mark = ah.snapshot(lab.host_root(HOST)), ah.package_ids(repo), last_event_id(repo)
    batch = dict(settings, remote_batch_download=True, remote_batch_feed_url=nginx.url("catalog.json"), remote_batch_modules=["raid-utility"])
    done = ah.run_playbook(lab, BATCH, batch, "-i", lab.inventory_path, "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(check mode: nothing was changed)" in done.stdout and "Remote batch finished." in done.stdout, done.stdout
    after = ah.snapshot(lab.host_root(HOST))
    assert (after["versions"], after["jobs"]) == (before["versions"], before["jobs"])
    assert ah.package_ids(repo) == stored and last_event_id(repo) == mark
