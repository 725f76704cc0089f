# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compliance report's rules: input checks, counts by group, and the three formats."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import compliance_report as cr


def module(name, verdict, current='1.0', target='1.0', rule='exact', reason=''):
    return {'module': name, 'verdict': verdict, 'current': current, 'target': target, 'rule': rule, 'reason': reason}


def server(host, verdict, groups=('web',), modules=None, read_at='2026-12-04T01:00:00Z', reason=''):
    return {
        'host': host,
        'verdict': verdict,
        'groups': list(groups),
        'modules': modules if modules is not None else [module('bios', verdict)],
        'read_at': read_at,
        'reason': reason,
    }


ESTATE = [
    server('web1', 'pass'),
    server('web2', 'fail', modules=[module('bios', 'fail', '1.0', '1.2', 'not_older_than', 'older than the baseline'), module('bmc', 'pass')]),
    server('db1', 'unknown', groups=('db', 'web'), read_at='2026-11-01T00:00:00Z', reason='reading older than 7 days'),
    server('db2', 'pass', groups=('db',)),
]


def test_counts_by_group_with_the_estate_first():
    report = cr.build_report(ESTATE)
    assert [group.as_dict() for group in report.groups] == [
        {'group': 'all', 'servers': 4, 'pass': 2, 'fail': 1, 'unknown': 1, 'compliance_percent': 50.0},
        {'group': 'db', 'servers': 2, 'pass': 1, 'fail': 0, 'unknown': 1, 'compliance_percent': 50.0},
        {'group': 'web', 'servers': 3, 'pass': 1, 'fail': 1, 'unknown': 1, 'compliance_percent': 33.3},
    ]


def test_failing_servers_come_first_then_unknown_then_passing():
    assert [row.host for row in cr.build_report(ESTATE).servers] == ['web2', 'db1', 'db2', 'web1']


def test_summary_names_the_hosts_to_act_on_and_the_reading_span():
    summary = cr.build_report(ESTATE).summary
    assert summary['failing'] == ['web2']
    assert summary['unknown_hosts'] == ['db1']
    assert (summary['oldest_reading'], summary['newest_reading']) == ('2026-11-01T00:00:00Z', '2026-12-04T01:00:00Z')


def test_an_empty_estate_is_a_report_with_no_servers():
    report = cr.build_report([])
    assert report.summary['servers'] == 0 and report.summary['compliance_percent'] == 0.0
    assert '<table id="servers">' in cr.report_html(report)


def test_the_same_results_give_the_same_bytes_in_any_order():
    first = cr.render(cr.build_report(ESTATE), cr.FORMATS)
    again = cr.render(cr.build_report(list(reversed(ESTATE))), cr.FORMATS)
    assert first == again


def test_json_holds_summary_and_rows():
    document = json.loads(cr.report_json(cr.build_report(ESTATE)))
    assert document['summary']['fail'] == 1
    web2 = next(row for row in document['servers'] if row['host'] == 'web2')
    assert web2['modules'][0] == {
        'module': 'bios',
        'verdict': 'fail',
        'current': '1.0',
        'target': '1.2',
        'rule': 'not_older_than',
        'reason': 'older than the baseline',
    }


def test_junit_fail_is_a_failure_and_unknown_is_skipped():
    root = ElementTree.fromstring(cr.report_junit(cr.build_report(ESTATE)))
    suites = {suite.get('name'): suite for suite in root.findall('testsuite')}
    assert set(suites) == {'web1', 'web2', 'db1', 'db2'}
    assert root.get('failures') == '1'
    assert [case.get('name') for case in suites['web2'].findall('testcase[failure]')] == ['bios']
    assert suites['web2'].get('failures') == '1' and suites['web2'].get('tests') == '2'
    assert suites['db1'].find('testcase/skipped') is not None
    assert suites['web1'].find('testcase/failure') is None and suites['web1'].find('testcase/skipped') is None


def test_junit_server_without_module_rows_is_one_case():
    root = ElementTree.fromstring(cr.report_junit(cr.build_report([server('lone', 'fail', modules=[], reason='no baseline')])))
    case = root.find('testsuite/testcase')
    assert case.get('name') == 'server' and 'no baseline' in case.find('failure').get('message')


def test_html_is_self_contained_with_chart_and_table():
    page = cr.report_html(cr.build_report(ESTATE))
    assert '<script' not in page and 'http://' not in page.replace('http://www.w3.org/2000/svg', '')
    assert page.count('<tr class="server ') == 4
    assert page.count('<g class="bar"') == 3  # all, db, web
    assert 'name="viewport"' in page


def test_chart_bars_fill_the_span_in_proportion():
    chart = cr.chart_bars(cr.build_report(ESTATE).groups)
    web = next(item for item in chart['bars'] if item['group'] == 'web')
    widths = [part['width'] for part in web['parts']]
    assert [part['verdict'] for part in web['parts']] == ['pass', 'fail', 'unknown']
    assert abs(sum(widths) - (cr.CHART_WIDTH - cr.LABEL_WIDTH - 60)) < 0.1
    assert len(set(widths)) == 1  # one server each


def test_hostile_strings_are_escaped_in_html_and_xml():
    hostile = '<script>alert(1)</script>&"'
    results = [server(hostile, 'fail', groups=[hostile], modules=[module(hostile, 'fail', hostile, hostile, hostile, hostile)])]
    report = cr.build_report(results)
    page = cr.report_html(report)
    assert '<script>' not in page and '&lt;script&gt;' in page
    ElementTree.fromstring(cr.report_junit(report))  # still well-formed


def test_control_characters_leave_the_junit_parseable():
    hostile = 'web\x00\x1b[31m\x0bend'
    report = cr.build_report([server(hostile, 'fail', modules=[module('bios', 'fail', '1', '2', 'exact', 'reason \x01')])])
    root = ElementTree.fromstring(cr.report_junit(report))
    assert root.find('testsuite').get('name') == 'web\ufffd\ufffd[31m\ufffdend'
    assert '\x00' not in cr.report_html(report) and '\x00' not in cr.report_json(report)


def test_junit_failures_count_test_cases_like_tests():
    two_failed = [module('bios', 'fail', '1', '2', 'exact', 'old'), module('bmc', 'fail', '1', '2', 'exact', 'old')]
    root = ElementTree.fromstring(cr.report_junit(cr.build_report([server('web1', 'fail', modules=two_failed), server('web2', 'pass')])))
    assert root.get('failures') == '2' and root.get('tests') == '3'


def test_long_strings_are_cut():
    row = cr.build_report([server('h' * 5000, 'pass')]).servers[0]
    assert len(row.host) == cr.MAX_TEXT


@pytest.mark.parametrize(
    'results, field',
    [
        ('not a list', 'results'),
        ([42], 'results[0]'),
        ([{'verdict': 'pass'}], 'results[0].host'),
        ([server('a', 'green', modules=[])], 'results[0].verdict'),
        ([server('a', 'pass', modules=[module('bios', 'maybe')])], 'results[0].modules[0].verdict'),
        ([server('a', 'pass', modules=['bios'])], 'results[0].modules[0]'),
        ([dict(server('a', 'pass'), groups='web')], 'results[0].groups'),
        ([dict(server('a', 'pass'), modules={'bios': 'x'})], 'results[0].modules'),
        ([dict(server('a', 'pass'), host=['a'])], 'results[0].host'),
        ([dict(server('a', 'pass'), read_at=True)], 'results[0].read_at'),
        ([server('a', 'pass'), server('a', 'fail')], 'results'),
    ],
)
def test_bad_input_is_refused_with_the_field(results, field):
    with pytest.raises(cr.ReportInputError) as caught:
        cr.build_report(results)
    assert caught.value.code == 'report_input_invalid'
    assert caught.value.details['field'] == field
    assert caught.value.msg


def test_an_unknown_format_is_refused():
    with pytest.raises(cr.ReportInputError, match='unknown report format pdf'):
        cr.render(cr.build_report(ESTATE), ['html', 'pdf'])
