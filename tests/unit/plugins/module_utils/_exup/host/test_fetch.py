# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A managed host's fetch of a pool ticket URL: what it refuses before and without any traffic."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.host.fetch import fetch_chunks

URL = 'https://127.0.0.1:9/v1/pool/sha256/%s.zip?expires=1&ticket=secret-ticket' % ('a' * 64)


@pytest.mark.parametrize('ca_pem', ['not a certificate', '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n'])
def test_a_ca_text_that_is_no_certificate_is_package_fetch_failed_and_hides_the_ticket(ca_pem):
    with pytest.raises(ExupError) as refused:
        list(fetch_chunks(URL, 10, ca_pem=ca_pem, timeout=2))
    assert refused.value.code == 'package_fetch_failed' and 'secret-ticket' not in refused.value.msg


def test_nobody_listening_is_package_fetch_failed_naming_the_file_not_the_ticket():
    with pytest.raises(ExupError) as refused:
        list(fetch_chunks(URL.replace('https', 'http'), 10, timeout=2))
    assert refused.value.code == 'package_fetch_failed'
    assert refused.value.msg.startswith('this host cannot fetch http://127.0.0.1:9/v1/pool/sha256/') and 'ticket' not in refused.value.msg
