#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_agent
short_description: Install, upgrade, uninstall and query the exup agent on a managed server
version_added: 0.1.0
description:
  - Runs through an action plugin on the controller (003 §3.8 remote install, §3.9 uninstall).
  - The agent installs to the fixed folder C(/opt/exup/agent) on Linux, as the administrator account (use C(become)).
  - Prerequisites are checked first and the failure says why - unsupported OS, virtual machine guest, unsupported model,
    conflicting software (003 §2.3.2-3), a Python library the server's Python cannot import (C(missing_library), naming
    the package to install for that Python and OS). O(state=query) lists them all in RV(prerequisites).
  - The agent is itself an update package (module C(update-agent)), so M(exup.fleet.exup_apply) can update it too.
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.host
  - exup.fleet.repository.http
  - exup.fleet.repository.remote
options:
  state:
    description:
      - V(present) installs or upgrades, V(absent) uninstalls (agent management of the server ends), V(query) reports,
        V(logs_collected) copies the agent's logs to O(logs_dest) on the controller.
    type: str
    default: present
    choices: [present, absent, query, logs_collected]
  repository:
    description:
      - The repository folder on the controller, or the URL of a repository service (V(https://repo.example.com:8080),
        with O(repository_password)); needed for V(present).
      - From a repository service the agent package is fetched to the controller and sent over the connection.
    type: str
  trusted_keys:
    description:
      - Public keys the agent package must be signed with.
      - PEM text or paths of PEM files on the controller, read there (the server gets the key material only); see
        O(exup.fleet.exup_apply#module:trusted_keys).
    type: list
    elements: str
    default: []
  source:
    description:
      - Where the package comes from - the repository's newest, the feed (a repository sync for this server, then the
        newest), installation media (O(media_path)) or a given O(file).
    type: str
    default: repository
    choices: [repository, feed, media, file]
  feed_url:
    description: The feed's catalog URL, for O(source=feed).
    type: str
  media_path:
    description: A mounted installation medium on the controller, searched for agent packages.
    type: path
  file:
    description: An agent package on the controller; it is added to the repository (pinned).
    type: path
  prefer_newer:
    description:
      - With O(source=file), when the repository holds a newer agent, use that one (the file is then not added).
        RV(source_used) says which was used.
    type: bool
    default: true
  license_accepted:
    description: The agent's license must be accepted to install it.
    type: bool
    default: false
  os_type:
    description: OS family of the server; this collection's agent supports Linux.
    type: str
    default: linux
    choices: [linux, windows]
  install_dir:
    description: Must be C(/opt/exup/agent) (or unset) on Linux, where the folder is fixed.
    type: path
  logs_dest:
    description: Folder on the controller for O(state=logs_collected); files go to a subfolder per server.
    type: path
attributes:
  check_mode:
    support: full
    description: Says what would be installed or removed.
  diff_mode:
    support: full
    description: Agent version before and after.
requirements:
  - cryptography >= 42.0 (on the controller, and on the managed server for an install)
  - lxml >= 5.2 (on the controller, and on the managed server for an install; state=query lists a missing one in prerequisites)
  - requests >= 2.31 (on the controller, for source=feed or a repository service URL)
'''

EXAMPLES = r'''
- name: Install the agent from the repository's newest package
  exup.fleet.exup_agent:
    repository: /var/lib/exup/repo
    trusted_keys: [/etc/exup/vendor.pub]
    license_accepted: true
  become: true

- name: Collect the agent's logs
  exup.fleet.exup_agent:
    state: logs_collected
    logs_dest: /tmp/exup-logs
'''

RETURN = r'''
status:
  description: installed, upgraded, unchanged, uninstalled, not_installed or failed.
  returned: always
  type: str
version:
  description: The agent version now installed.
  returned: always
  type: str
folder:
  description: Where the agent is installed.
  returned: success
  type: str
source_used:
  description: repository, feed, media, file or repository_newer (the repository's newer package was used instead of the file).
  returned: state=present
  type: str
package_id:
  description: The agent package installed or offered.
  returned: state=present, when a package was chosen
  type: str
feed_would_download:
  description: In check mode with O(source=feed), the package ids the repository sync would download.
  returned: check mode, O(source=feed)
  type: list
  elements: str
agent:
  description: The agent on the server as it is now (after an install or uninstall; for V(query), as found).
  returned: state=query, and success of present and absent
  type: dict
  contains:
    installed:
      description: Whether the agent is installed.
      type: bool
    version:
      description: The installed agent's version, null when it is not installed.
      type: str
    folder:
      description: Where the agent is installed, null when it is not installed.
      type: str
facts:
  description: What was read on the server.
  returned: state=query
  type: dict
  contains:
    model:
      description: DMI product name.
      type: str
    vendor:
      description: DMI system vendor.
      type: str
    os:
      description: The OS as packages name it (rhel9, sles15, ubuntu2204).
      type: str
    os_pretty_name:
      description: PRETTY_NAME of os-release.
      type: str
    virtual_machine:
      description: The hypervisor when the server is a virtual machine guest, else null.
      type: str
    boot_id:
      description: The kernel's boot id; it changes at every restart.
      type: str
prerequisites:
  description:
    - The server's own reasons the agent cannot be installed there, empty when none - a virtual machine guest,
      an OS or model the agent does not support, conflicting software, and a Python library the server's Python
      cannot import (V(missing_library), with the library and the package to install).
  returned: state=query
  type: list
  elements: dict
  contains:
    code:
      description:
        - Stable code of the reason, for example V(virtual_machine), V(unsupported_os), V(unsupported_model),
          V(conflicting_software) or V(missing_library).
      type: str
    msg:
      description: The reason in words.
      type: str
    library:
      description: For V(missing_library), the Python library the server's Python cannot import (V(cryptography), V(lxml)).
      type: str
      returned: when code is missing_library
    package:
      description:
        - For V(missing_library), the distribution package that brings it to that Python on that OS - V(python3-lxml) for a
          platform Python, V(python311-lxml) for SLES 15's Python 3.11, V(python3.11-lxml) for RHEL's.
      type: str
      returned: when code is missing_library
blockers:
  description: On a refused install, every prerequisite that failed (the first one's code is RV(error)).
  returned: failure for a prerequisite
  type: list
  elements: dict
  contains:
    code:
      description:
        - Stable code of the reason, for example V(virtual_machine), V(unsupported_os), V(unsupported_model),
          V(conflicting_software) or V(missing_library).
      type: str
    msg:
      description: The reason in words.
      type: str
    library:
      description: For V(missing_library), the Python library the server's Python cannot import (V(cryptography), V(lxml)).
      type: str
      returned: when code is missing_library
    package:
      description:
        - For V(missing_library), the distribution package that brings it to that Python on that OS - V(python3-lxml) for a
          platform Python, V(python311-lxml) for SLES 15's Python 3.11, V(python3.11-lxml) for RHEL's.
      type: str
      returned: when code is missing_library
files:
  description: For V(logs_collected), the log files copied to the controller.
  returned: state=logs_collected
  type: list
  elements: str
remote_files:
  description: For V(logs_collected), the agent's log files on the server.
  returned: state=logs_collected
  type: list
  elements: str
dest:
  description: For V(logs_collected), the folder on the controller that holds this server's logs.
  returned: state=logs_collected
  type: str
error:
  description:
    - Stable code of the failure (unsupported_os, virtual_machine, unsupported_model, conflicting_software, missing_library,
      license_not_accepted, ...).
  returned: failure
  type: str
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup_specs import AGENT_SPEC, refuse_direct_run


def main():
    refuse_direct_run('exup_agent', AGENT_SPEC)


if __name__ == '__main__':
    main()
