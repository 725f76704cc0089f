# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Uploads a manager never added are removed after their lifetime; those still in it stay."""

from __future__ import annotations

import os

from ansible_collections.exup.fleet.plugins.module_utils._exup.service import app


def test_an_upload_older_than_its_lifetime_is_removed_and_a_recent_one_stays(tmp_path):
    uploads = tmp_path / 'uploads'
    for name in ('old', 'recent'):
        (uploads / name).mkdir(parents=True)
        (uploads / name / 'package.zip').write_bytes(b'zip')
    now = 1_800_000_000.0
    os.utime(uploads / 'old', (now - app.UPLOAD_LIFETIME_SECONDS - 1, now - app.UPLOAD_LIFETIME_SECONDS - 1))
    os.utime(uploads / 'recent', (now - 10, now - 10))
    app.sweep_stale(str(uploads), now)
    assert sorted(os.listdir(uploads)) == ['recent']


def test_no_uploads_folder_is_nothing_to_sweep(tmp_path):
    app.sweep_stale(str(tmp_path / 'none'), 0.0)
    assert not (tmp_path / 'none').exists()


def test_an_upload_still_being_written_stays_though_its_folder_is_old(tmp_path):
    uploads = tmp_path / 'uploads'
    (uploads / 'writing').mkdir(parents=True)
    (uploads / 'writing' / 'package.zip').write_bytes(b'z' * 10)
    now = 1_800_000_000.0
    old = now - app.UPLOAD_LIFETIME_SECONDS - 100
    os.utime(uploads / 'writing', (old, old))  # the folder: made long ago
    os.utime(uploads / 'writing' / 'package.zip', (now - 1, now - 1))  # the file: written a second ago
    app.sweep_stale(str(uploads), now)
    assert os.listdir(uploads) == ['writing']


def test_a_download_whose_worker_is_gone_is_download_lost(tmp_path):
    downloads = app.Downloads.__new__(app.Downloads)  # the state files only: no service needed
    downloads.folder = str(tmp_path)
    gone = 2**22 + 12345  # above the usual pid_max: no such process
    (tmp_path / ('a' * 16 + '.json')).write_text('{"download_id": "%s", "state": "running", "pid": %d}' % ('a' * 16, gone))
    (tmp_path / ('b' * 16 + '.json')).write_text('{"download_id": "%s", "state": "running", "pid": %d}' % ('b' * 16, os.getpid()))
    lost = downloads.state('a' * 16)
    assert (lost['state'], lost['error']) == ('failed', 'download_lost') and 'stopped before it ended' in lost['msg']
    assert downloads.state('b' * 16) == {'download_id': 'b' * 16, 'state': 'running'}  # its worker runs; the pid stays inside
