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
    app.sweep_uploads(str(uploads), now)
    assert sorted(os.listdir(uploads)) == ['recent']


def test_no_uploads_folder_is_nothing_to_sweep(tmp_path):
    app.sweep_uploads(str(tmp_path / 'none'), 0.0)
    assert not (tmp_path / 'none').exists()
