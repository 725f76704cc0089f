#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_compliance_report
short_description: Write the compliance report of servers against their baselines as HTML, JSON and JUnit XML
version_added: 0.1.0
description:
  - Turns the per-server results of M(exup.fleet.exup_baseline_compliance_info) into report files
    (docs/baselines.md, "Reports"), usually once per play on the controller (C(run_once), C(delegate_to) V(localhost)) -
    a self-contained HTML page (totals, a chart of compliance by group, a table of every server with its modules'
    current and target versions; no script or external file, readable on a phone), a JSON document, and JUnit XML
    for pipelines (a test suite per server, a test case per module; C(fail) is a failure, C(unknown) is skipped).
  - The files depend only on the results, so the same results write the same bytes and report C(changed=false).
    The page says when the oldest and the newest reading were taken, not when it was written.
  - The HTML report is rendered with Jinja2, which ansible-core brings on the controller.
  - A server whose reading was too old is C(unknown), never pass or fail, and counts as not compliant in the percentages.
  - Every string of the results is escaped; a result that is not what the compliance module returns is refused
    with C(error=report_input_invalid) and the field, and no file is written.
  - Files are written to a temporary file beside the target and renamed, so a reader never sees half a report.
author: exup.fleet contributors (@exup-fleet)
options:
  results:
    description:
      - One item per server, the result of M(exup.fleet.exup_baseline_compliance_info) for it, with C(host)
        (the inventory name) and C(groups) (its C(group_names)) added. See EXAMPLES.
      - Keys read are C(host), C(verdict) (V(pass), V(fail) or V(unknown)), C(reason), C(read_at), C(groups) and
        C(modules) (items with C(module), C(verdict), C(current), C(target), C(rule) and C(reason)); other keys are ignored.
    type: list
    elements: dict
    required: true
  dest:
    description: The directory the reports are written to (created when missing).
    type: path
    required: true
  formats:
    description: The reports to write.
    type: list
    elements: str
    choices: [html, json, junit]
    default: [html, json, junit]
  basename:
    description: File name without extension; the files are C(<basename>.html), C(<basename>.json) and C(<basename>.xml).
    type: str
    default: compliance
  title:
    description: The title of the reports.
    type: str
    default: exup.fleet compliance
attributes:
  check_mode:
    support: full
    description: Reports which files would change; writes nothing.
  diff_mode:
    support: full
    description: The summary counts the existing JSON report holds (when there is one) and the new ones.
requirements:
  - cryptography >= 42.0 (checked when any exup module starts)
  - lxml >= 5.2 (checked when any exup module starts)
seealso:
  - module: exup.fleet.exup_baseline_compliance_info
'''

EXAMPLES = r'''
- name: Check every server against its baseline
  exup.fleet.exup_baseline_compliance_info:
    baseline: "{{ exup_baseline }}"
  register: compliance

- name: Add the inventory name and groups to each server's result
  ansible.builtin.set_fact:
    exup_compliance_row: "{{ compliance | combine({'host': inventory_hostname, 'groups': group_names}) }}"

- name: Write the reports on the controller
  exup.fleet.exup_compliance_report:
    results: "{{ ansible_play_hosts_all | map('extract', hostvars, 'exup_compliance_row') | list }}"
    dest: reports/
  run_once: true
  delegate_to: localhost
  register: report

- name: Give AWX the counts
  ansible.builtin.set_stats:
    data:
      exup_compliance: "{{ report.summary }}"
  run_once: true
'''

RETURN = r'''
summary:
  description: The counts of the report.
  returned: success
  type: dict
  contains:
    servers:
      description: Servers in the report.
      type: int
      sample: 4
    pass:
      description: Servers that pass their baseline.
      type: int
      sample: 2
    fail:
      description: Servers that fail it.
      type: int
      sample: 1
    unknown:
      description: Servers whose verdict is unknown (for example a reading that is too old).
      type: int
      sample: 1
    compliance_percent:
      description: Share of the servers that pass, in percent (one decimal).
      type: float
      sample: 50.0
    groups:
      description: The same counts per inventory group.
      type: list
      elements: dict
      contains:
        group:
          description: The group's name.
          type: str
          sample: web
        servers:
          description: Servers of the group in the report.
          type: int
          sample: 3
        pass:
          description: Servers of the group that pass.
          type: int
          sample: 1
        fail:
          description: Servers of the group that fail.
          type: int
          sample: 1
        unknown:
          description: Servers of the group whose verdict is unknown.
          type: int
          sample: 1
        compliance_percent:
          description: Share of the group's servers that pass, in percent.
          type: float
          sample: 33.3
    failing:
      description: The servers that fail, by name.
      type: list
      elements: str
      sample: [web2]
    unknown_hosts:
      description: The servers whose verdict is unknown, by name.
      type: list
      elements: str
      sample: [db1]
    oldest_reading:
      description: When the oldest reading was taken (as the results give it), empty when none says.
      type: str
      sample: '2026-11-01T00:00:00Z'
    newest_reading:
      description: When the newest reading was taken.
      type: str
      sample: '2026-12-04T01:00:00Z'
files:
  description: format -> the path of its report file.
  returned: success
  type: dict
  contains:
    html:
      description: The HTML page, when asked for.
      type: str
      sample: reports/compliance.html
    json:
      description: The JSON report, when asked for.
      type: str
      sample: reports/compliance.json
    junit:
      description: The JUnit XML report, when asked for.
      type: str
      sample: reports/compliance.xml
written:
  description: The formats whose file was written (or would be, in check mode) because its content changed.
  returned: success
  type: list
  elements: str
  sample: [html, json, junit]
error:
  description: Stable code of the failure (C(report_input_invalid), C(os_error), C(missing_library)).
  returned: failure
  type: str
  sample: report_input_invalid
field:
  description: The field of O(results) a C(report_input_invalid) failure is about.
  returned: failure, for bad results
  type: str
  sample: results[3].verdict
'''

import json
import os
import tempfile

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import compliance_report
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import ExupModule

EXTENSIONS = {'html': '.html', 'json': '.json', 'junit': '.xml'}


def _read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except OSError:
        return None


def _old_summary(path):
    """The summary of the JSON report already there (for the diff), or {}."""
    try:
        return json.loads(_read(path) or b'{}').get('summary', {})
    except (ValueError, AttributeError):
        return {}


def _write(path, data):
    directory = os.path.dirname(path) or '.'
    handle, tmp = tempfile.mkstemp(prefix='.exup-report-', dir=directory)
    try:
        with os.fdopen(handle, 'wb') as stream:
            stream.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    argument_spec = {
        'results': {'type': 'list', 'elements': 'dict', 'required': True},
        'dest': {'type': 'path', 'required': True},
        'formats': {'type': 'list', 'elements': 'str', 'choices': list(compliance_report.FORMATS), 'default': list(compliance_report.FORMATS)},
        'basename': {'type': 'str', 'default': 'compliance'},
        'title': {'type': 'str', 'default': 'exup.fleet compliance'},
    }
    module = ExupModule(argument_spec, supports_check_mode=True)
    params = module.params
    if os.sep in params['basename'] or params['basename'] in ('', '.', '..'):
        module.fail_json(msg='basename must be a file name, not %r' % params['basename'], error='report_input_invalid', field='basename')
    report = module.run(compliance_report.build_report, params['results'], params['title'])
    texts = module.run(compliance_report.render, report, sorted(set(params['formats'])))
    files = {name: os.path.join(params['dest'], params['basename'] + EXTENSIONS[name]) for name in texts}
    written = [name for name, text in texts.items() if _read(files[name]) != text.encode('utf-8')]
    diff = {'before': _old_summary(files['json']) if 'json' in files else {}, 'after': report.summary}
    if written and not module.check_mode:
        module.run(os.makedirs, params['dest'], exist_ok=True)
        for name in written:
            module.run(_write, files[name], texts[name].encode('utf-8'))
    module.exit_json(changed=bool(written), summary=report.summary, files=files, written=written, diff=diff)


if __name__ == '__main__':
    main()
