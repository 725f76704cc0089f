# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HttpClient.fetch on a loopback server: the Download it returns (path, bytes kept, bytes fetched) and its refusals.

The system tests (tests/system/test_sync_proxy.py, test_sync_deadlines.py, test_sync_bad_input.py) drive the
same client through a whole sync; here one call at a time, with the hostile server of tests/services.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import Download, HttpClient
from ansible_collections.exup.fleet.tests.services.hostile import HostileHTTPServer

BODY = os.urandom(3 * 65536 + 123)
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server():
    with HostileHTTPServer() as running:
        yield running


@pytest.fixture
def client():
    return HttpClient(timeout=5, retries=0)


@pytest.mark.parametrize('keep', [True, False])
def test_fetch_writes_the_part_and_keeps_the_bytes_when_asked(server, client, tmp_path, keep):
    url = server.add('/p.bin', BODY)
    part = str(tmp_path / 'p.part')
    got = client.fetch(url, part, len(BODY), SHA, keep_bytes=keep)
    assert got == Download(part, BODY if keep else None, len(BODY))
    with open(part, 'rb') as handle:
        assert handle.read() == BODY


def test_fetch_resumes_a_part_and_counts_only_the_new_bytes(server, client, tmp_path):
    url = server.add('/p.bin', BODY)
    part = tmp_path / 'p.part'
    part.write_bytes(BODY[:70000])
    got = client.fetch(url, str(part), len(BODY), SHA, keep_bytes=True)
    assert (got.data, got.fetched) == (BODY, len(BODY) - 70000)
    assert server.requests_for('/p.bin')[0].headers['Range'] == 'bytes=70000-'
    assert part.read_bytes() == BODY


def test_fetch_of_a_cut_body_resumes_within_the_call(server, client, tmp_path):
    url = server.add('/p.bin', BODY, truncate_at=100000)
    part = str(tmp_path / 'p.part')
    # the first answer is cut at 100000 bytes; the resume's 206 is cut again after 100000 more, the third completes
    got = client.fetch(url, part, len(BODY), SHA, keep_bytes=True)
    assert (got.data, got.fetched) == (BODY, len(BODY))
    assert [r.headers['Range'] for r in server.requests_for('/p.bin')] == [None, 'bytes=100000-']


def test_fetch_refuses_a_longer_body_and_leaves_no_part(server, client, tmp_path):
    url = server.add('/p.bin', BODY, overlong=10)
    part = tmp_path / 'p.part'
    with pytest.raises(TransportError) as caught:
        client.fetch(url, str(part), len(BODY), SHA, keep_bytes=True)
    assert caught.value.code == 'download_too_long'
    assert 'more than the %d bytes the catalog states' % len(BODY) in str(caught.value)
    assert not part.exists()


def test_fetch_refuses_other_bytes_and_leaves_no_part(server, client, tmp_path):
    url = server.add('/p.bin', BODY)
    part = tmp_path / 'p.part'
    with pytest.raises(TransportError) as caught:
        client.fetch(url, str(part), len(BODY), hashlib.sha256(b'other').hexdigest(), keep_bytes=True)
    assert caught.value.code == 'digest_mismatch'
    assert 'does not match the SHA-256 the catalog states' in str(caught.value)
    assert not part.exists()


def test_download_still_returns_the_path(server, client, tmp_path):
    url = server.add('/p.bin', BODY)
    part = str(tmp_path / 'p.part')
    assert client.download(url, part, len(BODY), SHA) == part
