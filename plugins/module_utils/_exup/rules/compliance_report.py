# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compliance reports (issue 13.2): the estate's baseline verdicts as HTML, JSON and JUnit XML.

Data in, text out, no I/O. The input is what ``exup_baseline_compliance_info`` returns per server
(docs/baselines.md), with the server's inventory groups added by the playbook. Everything in it is
checked first: a report is read by people and pipelines, and its input comes through variables
anyone can edit, so every string is escaped (Jinja2 autoescape) and every value is re-read by type.

The content is deterministic: the same results give the same bytes (no "generated now" stamp; the
report says when the newest and the oldest reading were taken), so writing a report is idempotent.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from xml.etree import ElementTree

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

try:
    import jinja2

    HAS_JINJA2 = True
except ImportError:  # pragma: no cover - ansible-core always brings it on the controller
    HAS_JINJA2 = False

VERDICTS = ('pass', 'fail', 'unknown')
FORMATS = ('html', 'json', 'junit')
#: the order a table lists servers in: what needs action first
VERDICT_ORDER = {'fail': 0, 'unknown': 1, 'pass': 2}
ALL_SERVERS = 'all'
MAX_TEXT = 1000  # longer strings are cut: a report stays readable whatever a variable holds
# characters XML 1.0 cannot hold (C0 controls but tab, newline and return; surrogates; U+FFFE, U+FFFF): replaced, so
# the JUnit file always parses
XML_INVALID = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')


class ReportInputError(ExupError):
    def __init__(self, msg: str, **details: Any):
        super().__init__(msg, code='report_input_invalid', **details)


@dataclasses.dataclass(frozen=True)
class ModuleRow:
    module: str
    verdict: str
    current: str
    target: str
    rule: str
    reason: str


@dataclasses.dataclass(frozen=True)
class ServerRow:
    host: str
    verdict: str
    reason: str
    groups: tuple
    read_at: str  # when the versions were read (ISO 8601), '' when not known
    modules: tuple  # of ModuleRow, in module order


@dataclasses.dataclass(frozen=True)
class GroupCount:
    group: str
    passed: int
    failed: int
    unknown: int

    @property
    def servers(self) -> int:
        return self.passed + self.failed + self.unknown

    @property
    def percent(self) -> float:
        """Share of the servers that pass; unknown counts as not passing (a stale reading proves nothing)."""
        return round(100.0 * self.passed / self.servers, 1) if self.servers else 0.0

    def as_dict(self) -> dict:
        return {
            'group': self.group,
            'servers': self.servers,
            'pass': self.passed,
            'fail': self.failed,
            'unknown': self.unknown,
            'compliance_percent': self.percent,
        }


@dataclasses.dataclass(frozen=True)
class Report:
    title: str
    servers: tuple  # of ServerRow, failing first
    groups: tuple  # of GroupCount: 'all' first, then by name

    @property
    def summary(self) -> dict:
        """The counts (for set_stats, the module's result and the JSON report)."""
        total = self.groups[0].as_dict()
        return {
            'servers': total['servers'],
            'pass': total['pass'],
            'fail': total['fail'],
            'unknown': total['unknown'],
            'compliance_percent': total['compliance_percent'],
            'groups': [group.as_dict() for group in self.groups[1:]],
            'failing': [row.host for row in self.servers if row.verdict == 'fail'],
            'unknown_hosts': [row.host for row in self.servers if row.verdict == 'unknown'],
            'oldest_reading': min((row.read_at for row in self.servers if row.read_at), default=''),
            'newest_reading': max((row.read_at for row in self.servers if row.read_at), default=''),
        }


def _text(value: Any, where: str, required: bool = False) -> str:
    if value is None and not required:
        return ''
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ReportInputError('%s must be a string, not %s' % (where, type(value).__name__), field=where)
    text = XML_INVALID.sub('\ufffd', str(value))
    if required and not text:
        raise ReportInputError('%s must not be empty' % where, field=where)
    return text[:MAX_TEXT]


def _verdict(value: Any, where: str) -> str:
    if value not in VERDICTS:
        raise ReportInputError('%s must be one of %s, not %r' % (where, ', '.join(VERDICTS), str(value)[:80]), field=where)
    return value


def _module_row(item: Any, where: str) -> ModuleRow:
    if not isinstance(item, Mapping):
        raise ReportInputError('%s must be a mapping' % where, field=where)
    return ModuleRow(
        module=_text(item.get('module'), where + '.module', required=True),
        verdict=_verdict(item.get('verdict'), where + '.verdict'),
        current=_text(item.get('current'), where + '.current'),
        target=_text(item.get('target'), where + '.target'),
        rule=_text(item.get('rule'), where + '.rule'),
        reason=_text(item.get('reason'), where + '.reason'),
    )


def server_row(item: Any, index: int) -> ServerRow:
    """One server's result, checked; ``item`` is exup_baseline_compliance_info's result plus ``host`` and ``groups``."""
    where = 'results[%d]' % index
    if not isinstance(item, Mapping):
        raise ReportInputError('%s must be a mapping' % where, field=where)
    groups = item.get('groups') or []
    modules = item.get('modules') or []
    if not isinstance(groups, Sequence) or isinstance(groups, str):
        raise ReportInputError('%s.groups must be a list' % where, field=where + '.groups')
    if not isinstance(modules, Sequence) or isinstance(modules, str):
        raise ReportInputError('%s.modules must be a list' % where, field=where + '.modules')
    rows = [_module_row(module, '%s.modules[%d]' % (where, number)) for number, module in enumerate(modules)]
    return ServerRow(
        host=_text(item.get('host'), where + '.host', required=True),
        verdict=_verdict(item.get('verdict'), where + '.verdict'),
        reason=_text(item.get('reason'), where + '.reason'),
        groups=tuple(sorted({_text(group, where + '.groups', required=True) for group in groups} - {ALL_SERVERS})),
        read_at=_text(item.get('read_at'), where + '.read_at'),
        modules=tuple(sorted(rows, key=lambda row: row.module)),
    )


def group_counts(servers: Sequence[ServerRow]) -> tuple:
    """Pass, fail and unknown per group, the whole estate first (group 'all')."""
    members: dict = {ALL_SERVERS: []}
    for row in servers:
        members[ALL_SERVERS].append(row.verdict)
        for group in row.groups:
            members.setdefault(group, []).append(row.verdict)
    names = [ALL_SERVERS] + sorted(name for name in members if name != ALL_SERVERS)
    return tuple(GroupCount(name, members[name].count('pass'), members[name].count('fail'), members[name].count('unknown')) for name in names)


def build_report(results: Any, title: str = 'exup.fleet compliance') -> Report:
    """The report of a list of per-server results; one server appears once (a repeated host is refused)."""
    if not isinstance(results, Sequence) or isinstance(results, (str, bytes)):
        raise ReportInputError('results must be a list of per-server results', field='results')
    servers = [server_row(item, index) for index, item in enumerate(results)]
    seen: set = set()
    for row in servers:
        if row.host in seen:
            raise ReportInputError('host %s appears twice in results' % row.host, field='results', host=row.host)
        seen.add(row.host)
    servers.sort(key=lambda row: (VERDICT_ORDER[row.verdict], row.host))
    return Report(title=_text(title, 'title', required=True), servers=tuple(servers), groups=group_counts(servers))


def report_json(report: Report) -> str:
    """The JSON report: the summary and every server's rows, keys sorted."""
    document = {
        'title': report.title,
        'summary': report.summary,
        'servers': [dataclasses.asdict(row) for row in report.servers],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + '\n'


def report_junit(report: Report) -> str:
    """JUnit XML for pipelines: a test suite per server, a test case per module; fail is a failure, unknown is skipped."""
    root = ElementTree.Element('testsuites', name=report.title, tests=str(sum(max(len(row.modules), 1) for row in report.servers)))
    failures = 0  # the test cases that failed, as `tests` counts test cases (not the failing servers)
    for row in report.servers:
        suite = ElementTree.SubElement(root, 'testsuite', name=row.host, tests=str(max(len(row.modules), 1)))
        suite_failures = sum(1 for module in row.modules if module.verdict == 'fail') or int(row.verdict == 'fail' and not row.modules)
        failures += suite_failures
        suite.set('failures', str(suite_failures))
        suite.set('skipped', str(sum(1 for module in row.modules if module.verdict == 'unknown') or int(row.verdict == 'unknown' and not row.modules)))
        cases = row.modules or (ModuleRow(module='server', verdict=row.verdict, current='', target='', rule='', reason=row.reason),)
        for module in cases:
            case = ElementTree.SubElement(suite, 'testcase', classname=row.host, name=module.module)
            message = '%s: current %s, target %s (%s)' % (module.reason or module.verdict, module.current or '-', module.target or '-', module.rule or '-')
            if module.verdict == 'fail':
                ElementTree.SubElement(case, 'failure', message=message, type='not_compliant')
            elif module.verdict == 'unknown':
                ElementTree.SubElement(case, 'skipped', message=message)
    root.set('failures', str(failures))
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding='unicode') + '\n'


#: bar geometry of the chart (SVG user units); the SVG scales to the page width
CHART_WIDTH = 600
BAR_HEIGHT = 22
BAR_GAP = 10
LABEL_WIDTH = 170

HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ report.title }}</title>
<style>
:root { --pass: #2e7d32; --fail: #c62828; --unknown: #9e9e9e; font-family: system-ui, sans-serif; }
body { margin: 0 auto; padding: 1rem; max-width: 70rem; color: #212121; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
.totals { display: flex; flex-wrap: wrap; gap: .5rem; margin: .5rem 0 1rem; padding: 0; list-style: none; }
.totals li { padding: .4rem .7rem; border-radius: .4rem; color: #fff; }
.totals .pass { background: var(--pass); } .totals .fail { background: var(--fail); } .totals .unknown { background: var(--unknown); }
.totals .all { background: #37474f; }
#chart svg { width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e0e0e0; vertical-align: top; overflow-wrap: anywhere; }
.verdict { font-weight: 600; }
.verdict.pass { color: var(--pass); } .verdict.fail { color: var(--fail); } .verdict.unknown { color: #616161; }
.modules { margin: 0; padding: 0; list-style: none; }
.modules li { margin: 0 0 .2rem; }
.note { color: #616161; font-size: .9rem; }
@media (max-width: 40rem) {
  table, thead, tbody, tr, th, td { display: block; }
  thead { display: none; }
  tr { border: 1px solid #e0e0e0; border-radius: .4rem; margin: 0 0 .7rem; padding: .3rem; }
  td { border: 0; }
  td::before { content: attr(data-label) ": "; font-weight: 600; }
}
</style>
</head>
<body>
<h1>{{ report.title }}</h1>
<p class="note">Readings from {{ summary.oldest_reading or 'unknown' }} to {{ summary.newest_reading or 'unknown' }}.
A server whose reading is too old is <em>unknown</em>, never pass or fail.</p>
<ul class="totals" id="totals">
<li class="all">{{ summary.servers }} servers, {{ summary.compliance_percent }}% compliant</li>
<li class="pass">{{ summary['pass'] }} pass</li>
<li class="fail">{{ summary['fail'] }} fail</li>
<li class="unknown">{{ summary['unknown'] }} unknown</li>
</ul>
<section id="chart" aria-label="Compliance by group">
<h2>Compliance by group</h2>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {{ chart.width }} {{ chart.height }}" role="img" aria-label="compliance by group">
{%- for bar in chart.bars %}
<g class="bar" data-group="{{ bar.group }}">
<text x="0" y="{{ bar.y + 16 }}" font-size="14">{{ bar.label }}</text>
{%- for part in bar.parts %}
<rect class="{{ part.verdict }}" x="{{ part.x }}" y="{{ bar.y }}" width="{{ part.width }}" height="{{ chart.bar_height }}"
 fill="var(--{{ part.verdict }})"><title>{{ bar.group }}: {{ part.count }} {{ part.verdict }}</title></rect>
{%- endfor %}
<text x="{{ chart.width - 4 }}" y="{{ bar.y + 16 }}" font-size="14" text-anchor="end">{{ bar.percent }}%</text>
</g>
{%- endfor %}
</svg>
</section>
<section aria-label="Servers">
<h2>Servers</h2>
<table id="servers">
<thead><tr><th>Server</th><th>Verdict</th><th>Groups</th><th>Modules (current &rarr; target)</th><th>Read at</th></tr></thead>
<tbody>
{%- for row in report.servers %}
<tr class="server {{ row.verdict }}" data-host="{{ row.host }}">
<td data-label="Server">{{ row.host }}</td>
<td data-label="Verdict" class="verdict {{ row.verdict }}">{{ row.verdict }}{% if row.reason %}<div class="note">{{ row.reason }}</div>{% endif %}</td>
<td data-label="Groups">{{ row.groups | join(', ') }}</td>
<td data-label="Modules"><ul class="modules">
{%- for module in row.modules %}
<li class="module {{ module.verdict }}"><span class="verdict {{ module.verdict }}">{{ module.verdict }}</span>
 {{ module.module }}: {{ module.current or '-' }} &rarr; {{ module.target or '-' }}
{%- if module.rule %} <span class="note">({{ module.rule }})</span>{% endif %}
{%- if module.reason %}<div class="note">{{ module.reason }}</div>{% endif %}</li>
{%- endfor %}
</ul></td>
<td data-label="Read at">{{ row.read_at or 'unknown' }}</td>
</tr>
{%- endfor %}
</tbody>
</table>
</section>
</body>
</html>
"""


def chart_bars(groups: Sequence[GroupCount]) -> dict:
    """The geometry of the chart: one stacked bar (pass, fail, unknown) per group."""
    span = CHART_WIDTH - LABEL_WIDTH - 60
    bars = []
    for number, group in enumerate(groups):
        parts, x = [], float(LABEL_WIDTH)
        for verdict, count in (('pass', group.passed), ('fail', group.failed), ('unknown', group.unknown)):
            width = round(span * count / group.servers, 2) if group.servers else 0.0
            if count:
                parts.append({'verdict': verdict, 'count': count, 'x': round(x, 2), 'width': width})
            x += width
        label = group.group if len(group.group) <= 20 else group.group[:19] + '\u2026'
        bars.append({'group': group.group, 'label': label, 'y': number * (BAR_HEIGHT + BAR_GAP), 'parts': parts, 'percent': group.percent})
    return {'width': CHART_WIDTH, 'height': max(len(bars) * (BAR_HEIGHT + BAR_GAP), BAR_HEIGHT), 'bar_height': BAR_HEIGHT, 'bars': bars}


def report_html(report: Report) -> str:
    """A self-contained HTML page (no script, no external file): totals, the chart by group, the server table."""
    if not HAS_JINJA2:
        raise ExupError('the compliance report needs the jinja2 Python library', code='missing_library', library='jinja2')
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.from_string(HTML_TEMPLATE).render(report=report, summary=report.summary, chart=chart_bars(report.groups))


def render(report: Report, formats: Sequence[str]) -> dict:
    """format -> text, for the formats asked for."""
    renderers = {'html': report_html, 'json': report_json, 'junit': report_junit}
    unknown = [name for name in formats if name not in renderers]
    if unknown:
        raise ReportInputError('unknown report format %s (known: %s)' % (', '.join(map(str, unknown)), ', '.join(FORMATS)), field='formats')
    return {name: renderers[name](report) for name in formats}
