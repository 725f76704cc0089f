# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin tests' fixtures (a real ActionModule, a mocked host, a repository on tmp_path), for the shared base class too."""

from __future__ import annotations

from ansible_collections.exup.fleet.tests.unit.plugins.action.conftest import (  # noqa: F401 pylint: disable=unused-import
    build_pkg,
    host,
    host_root,
    keyring,
    other_key,
    pem,
    repository,
    run_action,
    shown,
    signing_key,
)
