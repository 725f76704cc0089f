# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of the modules that act on one managed server (exup_info, exup_apply, exup_agent).
    DOCUMENTATION = r'''
options:
  manager_id:
    description: This manager's id in the repository (events, server registration).
    type: str
    default: local
  server_name:
    description: Name of the server in the repository; defaults to the inventory hostname.
    type: str
  host_root:
    description: Root of the server's file system; V(/) on real servers, a lab host root in tests.
    type: path
    default: /
'''
