# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of the out-of-band path (via: bmc) of exup_info and exup_apply.
    DOCUMENTATION = r'''
options:
  via:
    description:
      - V(agent) talks to the exup agent on the server over the play's connection.
      - V(bmc) talks to the server's BMC from the controller through pyghmi (003 §1.2.5), with no agent; only BIOS and BMC
        firmware (packages of kind C(bmc)) are managed this way, other modules are listed as not manageable through the BMC.
    type: str
    default: agent
    choices: [agent, bmc]
  bmc_address:
    description: Address of the BMC, for O(via=bmc).
    type: str
  bmc_protocol:
    description:
      - V(redfish) (HTTPS) reads the firmware inventory and updates firmware. V(ipmi) reads the firmware revision and power
        state only; updates through IPMI are refused.
    type: str
    default: redfish
    choices: [redfish, ipmi]
  bmc_username:
    description: BMC user.
    type: str
  bmc_password:
    description: BMC password. Never logged.
    type: str
  bmc_port:
    description: BMC port (default 443 for Redfish, 623 for IPMI).
    type: int
  bmc_system:
    description: Redfish system id or path (C(/redfish/v1/Systems/<id>)) when the service has several systems.
    type: str
  bmc_validate_certs:
    description: Verify the BMC's TLS certificate. Turn off only for tests.
    type: bool
    default: true
  bmc_ca_path:
    description:
      - CA certificate (PEM) the BMC's certificate must be issued by (its name or address checked too), instead of the
        system store.
    type: path
  bmc_timeout:
    description: Seconds to wait for each answer of the BMC.
    type: int
    default: 60
  model:
    description:
      - The server's model, for an IPMI BMC (which does not report it). With Redfish it must match what the BMC reports.
    type: str
'''
