# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent as an update package (module ``update-agent``), so exup_apply can update it too.

The payload is the runner (``agent_runner.py``, standard library only) and two
POSIX shell scripts that install it to the fixed folder ``/opt/exup/agent``
(below ``$EXUP_ROOT``) and remove it again. The state folder ``/var/lib/exup``
outlives an uninstall: the journal of the job that removed the agent stays readable.
"""

from __future__ import annotations

import os
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent_runner
from ansible_collections.exup.fleet.plugins.module_utils._exup.host.agent_runner import AGENT_DIR, STATE_DIR
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import MODULE_KINDS, PackageInfo, build_package_from_bytes
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.support import AGENT_MODULE

if typing.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey

AGENT_OS = ('rhel8', 'rhel9', 'sles15', 'ubuntu2204')

INSTALL_SH = r'''#!/bin/sh
# Install the exup agent to $EXUP_ROOT/@AGENT_DIR@ (fixed on Linux), replacing an older one atomically.
set -eu
dest="${EXUP_ROOT:-}/@AGENT_DIR@"
state="${EXUP_ROOT:-}/@STATE_DIR@"
version="$(cat ./VERSION)"
mkdir -p "$(dirname "$dest")" "$state/inbox" "$state/jobs" "$state/log" "$state/inventory"
chmod 700 "$state"
new="$dest.new.$$"
rm -rf "$new"
mkdir -p "$new/bin"
cp ./bin/exup-agent "$new/bin/exup-agent"
cp ./uninstall.sh "$new/uninstall.sh"
cp ./VERSION "$new/VERSION"
chmod 755 "$new/bin/exup-agent" "$new/uninstall.sh"
if [ -d "$dest" ]; then
    rm -rf "$dest.old"
    mv "$dest" "$dest.old"
fi
mv "$new" "$dest"
rm -rf "$dest.old"
echo "exup agent $version installed in $dest"
'''.replace('@AGENT_DIR@', AGENT_DIR).replace('@STATE_DIR@', STATE_DIR)

UNINSTALL_SH = r'''#!/bin/sh
# Remove the exup agent; /@STATE_DIR@ (journals, logs) stays for the manager to read.
set -eu
dest="${EXUP_ROOT:-}/@AGENT_DIR@"
if [ -d "$dest" ]; then
    rm -rf "$dest"
    echo "exup agent removed from $dest"
else
    echo "exup agent not installed in $dest"
fi
'''.replace('@AGENT_DIR@', AGENT_DIR).replace('@STATE_DIR@', STATE_DIR)


def runner_source() -> bytes:
    """The agent's executable: the runner's own source (standard library only)."""
    with open(agent_runner.__file__.replace('.pyc', '.py'), 'rb') as handle:
        return b'#!/usr/bin/env python3\n' + handle.read()


def build_agent_package(
    version: str,
    signing_key: SigningKey,
    out_path: str,
    models: typing.Iterable[str],
    os_names: typing.Iterable[str] = AGENT_OS,
    release_date: str = '2026-01-01',
    package_id: str | None = None,
) -> PackageInfo:
    """Write a signed update-agent package of ``version`` for ``models`` to ``out_path``."""
    info = PackageInfo(
        package_id=package_id or 'exup-agent-%s' % version,
        module_id=AGENT_MODULE,
        module_name=MODULE_KINDS[AGENT_MODULE],
        version=version,
        release_date=release_date,
        models=list(models),
        os=list(os_names),
        kind='linux',
        auto_update=True,
        reboot_required=False,
        downgrade_supported=True,
        uninstall_supported=True,
        install_command='./install.sh',
        uninstall_command='./uninstall.sh',
        severity='recommended',
    )
    payload = {
        'bin/exup-agent': runner_source(),
        'install.sh': INSTALL_SH.encode(),
        'uninstall.sh': UNINSTALL_SH.encode(),
        'VERSION': (version + '\n').encode(),
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    build_package_from_bytes(payload, info, signing_key, out_path)
    return info
