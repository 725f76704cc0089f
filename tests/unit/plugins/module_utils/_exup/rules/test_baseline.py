# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Baselines and the compliance verdicts (issue 13.1)."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import baseline as rules
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.baseline import BaselineError, Candidate, Reading

NOW = datetime.datetime(2026, 12, 4, 6, 0, tzinfo=datetime.timezone.utc)
FRESH = '2026-12-04T05:00:00Z'
CANDIDATES = (
    Candidate('bios', '1.0', '2026-01-10', 'recommended'),
    Candidate('bios', '1.2', '2026-11-20', 'optional'),
    Candidate('bios', '1.1', '2026-06-01', 'critical'),
    Candidate('bmc', '2.10', '2026-09-01', 'recommended'),
    Candidate('bmc', '2.9', '2026-08-01', 'recommended'),
)


def verdict(modules, state, candidates=CANDIDATES, read_at=FRESH, **extra):
    parsed = rules.combine(dict({'name': 'b', 'modules': modules}, **extra))
    return rules.server_verdict(parsed, Reading(state, read_at), candidates, NOW)


def rows(result):
    return {row['module']: (row['verdict'], row['reason_code'], row['current'], row['target']) for row in result['modules']}


# --- schema ---------------------------------------------------------------------------------------------


def test_shorthand_and_full_entries():
    parsed = rules.parse_baseline({'name': 'gen10', 'modules': {'bmc': '2.10', 'bios': {'version': 'Newest', 'rule': 'not_older', 'severity': 'critical'}}})
    assert [entry.module_id for entry in parsed.entries] == ['bios', 'bmc']
    assert parsed.entries[0] == rules.Entry('bios', 'newest', 'not_older', ('critical',))
    assert parsed.entries[1] == rules.Entry('bmc', '2.10', 'exact')
    assert parsed.max_reading_age_hours == rules.DEFAULT_MAX_AGE_HOURS


def test_yaml_date_and_numbers_are_read():
    parsed = rules.parse_baseline(
        {'modules': {'bios': {'version': 'newest', 'released_not_after': datetime.date(2026, 10, 1), 'min_age_days': '30'}, 'nic': 2}}
    )
    assert parsed.entries[0].released_not_after == '2026-10-01'
    assert parsed.entries[0].min_age_days == 30
    assert parsed.entries[1].version == '2'


@pytest.mark.parametrize(
    'data, field',
    [
        ('not a mapping', 'baseline'),
        ([], None),
        ({'name': 'x', 'modulez': {}}, 'baseline'),
        ({'modules': ['bios']}, 'baseline.modules'),
        ({'modules': {'bios': {'version': '1.0', 'color': 'red'}}}, 'baseline.modules.bios'),
        ({'modules': {'bios': {'version': '1.0', 'rule': 'newer'}}}, 'baseline.modules.bios.rule'),
        ({'modules': {'bios': {'rule': 'exact'}}}, 'baseline.modules.bios.version'),
        ({'modules': {'bios': {'version': '../../etc'}}}, 'baseline.modules.bios.version'),
        ({'modules': {'bios': {'version': ''}}}, 'baseline.modules.bios.version'),
        ({'modules': {'bios': {'version': True}}}, 'baseline.modules.bios.version'),
        ({'modules': {'bios': None}}, 'baseline.modules.bios'),
        ({'modules': {'bad id!': '1.0'}}, 'baseline.modules'),
        ({'modules': {'bios': {'version': '1.0', 'severity': 'critical'}}}, 'baseline.modules.bios.severity'),
        ({'modules': {'bios': {'version': 'newest', 'severity': 'urgent'}}}, 'baseline.modules.bios.severity'),
        ({'modules': {'bios': {'version': 'newest', 'severity': []}}}, 'baseline.modules.bios.severity'),
        ({'modules': {'bios': {'version': 'newest', 'released_not_after': '2026-13-01'}}}, 'baseline.modules.bios.released_not_after'),
        ({'modules': {'bios': {'version': 'newest', 'released_not_after': 'yesterday'}}}, 'baseline.modules.bios.released_not_after'),
        ({'modules': {'bios': {'version': 'newest', 'min_age_days': -1}}}, 'baseline.modules.bios.min_age_days'),
        ({'modules': {'bios': {'version': 'newest', 'min_age_days': 'ten'}}}, 'baseline.modules.bios.min_age_days'),
        ({'modules': {'bios': {'version': 'newest', 'min_age_days': True}}}, 'baseline.modules.bios.min_age_days'),
        ({'max_reading_age_hours': 0, 'modules': {}}, 'baseline.max_reading_age_hours'),
        ({'max_reading_age_hours': 10**9, 'modules': {}}, 'baseline.max_reading_age_hours'),
        ({'name': {'x': 1}, 'modules': {}}, 'baseline.name'),
        ({'modules': {'bmc': 2.10}}, 'baseline.modules.bmc.version'),  # YAML's unquoted 2.10 is the float 2.1
        ({'modules': {'bmc': {'version': 1.0}}}, 'baseline.modules.bmc.version'),
    ],
)
def test_hostile_baselines_are_refused_with_a_code(data, field):
    if data == []:
        assert rules.combine(data) is None  # an empty list is no baseline
        return
    with pytest.raises(BaselineError) as caught:
        rules.combine(data)
    assert caught.value.code == 'baseline_invalid'
    assert caught.value.details['field'] == field
    assert str(caught.value)


def test_combined_list_later_wins_and_names_the_sources():
    combined = rules.combine(
        [{'name': 'all', 'modules': {'bios': '1.0', 'bmc': '2.9'}, 'max_reading_age_hours': 48}, {'name': 'gen10', 'modules': {'bios': '1.1'}}]
    )
    assert combined.name == 'all + gen10'
    assert combined.sources == ('all', 'gen10')
    assert {entry.module_id: entry.version for entry in combined.entries} == {'bios': '1.1', 'bmc': '2.9'}
    assert combined.max_reading_age_hours == 24  # the strictest
    with pytest.raises(BaselineError) as caught:
        rules.combine([{'modules': {}}, {'modules': 'x'}])
    assert caught.value.details['field'] == 'baseline[1].modules'


# --- verdicts ------------------------------------------------------------------------------------------


def test_static_exact_and_not_older():
    result = verdict(
        {'bios': '1.1', 'bmc': {'version': '2.9', 'rule': 'not_older'}, 'nic': {'version': '3.0', 'rule': 'not_older'}, 'raid': '1.02'},
        {'bios': {'current': '1.2'}, 'bmc': {'current': '2.10'}, 'nic': {'current': '2.99'}, 'raid': {'current': '1.2'}},
    )
    assert rows(result) == {
        'bios': ('fail', 'differs', '1.2', '1.1'),  # exact: newer is not the baseline either
        'bmc': ('pass', 'not_older', '2.10', '2.9'),  # 2.10 > 2.9 as firmware versions
        'nic': ('fail', 'older', '2.99', '3.0'),
        'raid': ('pass', 'match', '1.2', '1.02'),  # the same version by version order
    }
    assert result['verdict'] == 'fail' and result['reason_code'] == 'modules_fail'
    assert result['counts'] == {'pass': 2, 'fail': 2, 'unknown': 0}


def test_pass_when_all_pass():
    result = verdict({'bios': '1.1', 'bmc': {'rule': 'ignore'}}, {'bios': {'current': '1.1'}})
    assert rows(result) == {'bios': ('pass', 'match', '1.1', '1.1'), 'bmc': ('pass', 'ignored', None, '2.10')}
    assert (result['verdict'], result['reason_code']) == ('pass', 'compliant')


def test_previous():
    result = verdict({'bios': 'previous', 'bmc': 'previous'}, {'bios': {'current': '1.0', 'previous': '1.0'}, 'bmc': {'current': '2.10', 'previous': None}})
    assert rows(result) == {'bios': ('pass', 'match', '1.0', '1.0'), 'bmc': ('unknown', 'no_previous', '2.10', None)}
    assert (result['verdict'], result['reason_code']) == ('unknown', 'modules_unknown')


def test_newest_and_its_filters():
    state = {'bios': {'current': '1.1'}}
    assert rows(verdict({'bios': 'newest'}, state))['bios'] == ('fail', 'differs', '1.1', '1.2')
    assert rows(verdict({'bios': {'version': 'newest', 'severity': ['critical', 'recommended']}}, state))['bios'] == ('pass', 'match', '1.1', '1.1')
    assert rows(verdict({'bios': {'version': 'newest', 'released_not_after': '2026-06-01'}}, state))['bios'][3] == '1.1'  # the day itself counts
    assert rows(verdict({'bios': {'version': 'newest', 'released_not_after': '2026-05-31'}}, state))['bios'][3] == '1.0'
    # 1.2 was released 2026-11-20: 14 days before NOW
    assert rows(verdict({'bios': {'version': 'newest', 'min_age_days': 14}}, state))['bios'][3] == '1.2'
    assert rows(verdict({'bios': {'version': 'newest', 'min_age_days': 15}}, state))['bios'][3] == '1.1'
    assert rows(verdict({'bios': {'version': 'newest', 'min_age_days': 3000}}, state))['bios'] == ('unknown', 'no_package', '1.1', None)


def test_newest_severity_not_known_does_not_qualify():
    unknown_severity = [Candidate('bios', '1.2', '2026-11-20')]
    assert rows(verdict({'bios': {'version': 'newest', 'severity': 'critical'}}, {'bios': {'current': '1.2'}}, unknown_severity))['bios'][1] == 'no_package'
    assert rows(verdict({'bios': 'newest'}, {'bios': {'current': '1.2'}}, unknown_severity))['bios'][0] == 'pass'


def test_newest_without_repository_or_package():
    assert rows(verdict({'bios': 'newest'}, {'bios': {'current': '1.1'}}, None))['bios'] == ('unknown', 'no_repository', '1.1', None)
    assert rows(verdict({'gpu': 'newest'}, {'gpu': {'current': '1'}}))['gpu'] == ('unknown', 'no_package', '1', None)
    # a static target needs no package: the comparison is still made
    assert rows(verdict({'gpu': '1'}, {'gpu': {'current': '1'}}, []))['gpu'] == ('pass', 'match', '1', '1')


def test_module_not_on_the_server_fails():
    result = verdict({'bios': '1.1', 'gpu': 'newest'}, {'bios': {'current': '1.1'}, 'gpu': {'current': None}})
    assert rows(result)['gpu'] == ('fail', 'not_installed', None, None)
    assert rows(verdict({'bios': '1.1'}, {}))['bios'] == ('fail', 'not_installed', None, '1.1')
    assert result['verdict'] == 'fail'


@pytest.mark.parametrize(
    'read_at, code, age',
    [
        ('2026-12-03T05:59:59Z', 'reading_stale', 86401),
        ('2026-12-04T06:00:00+09:00', None, 9 * 3600),
        ('2026-12-03T06:00:00+00:00', None, 86400),  # exactly the limit is still fresh
        (None, 'reading_time_unknown', None),
        ('', 'reading_time_unknown', None),
        ('2026-12-04T05:00:00', 'reading_time_unknown', None),  # no zone: cannot be compared
        ('last tuesday', 'reading_time_unknown', None),
        (12345, 'reading_time_unknown', None),
        ('2026-12-04T06:10:00Z', 'reading_in_future', -600),
        ('2026-12-04T06:04:00Z', None, 0),  # small skew is tolerated
    ],
)
def test_staleness_is_unknown_never_pass_or_fail(read_at, code, age):
    result = verdict({'bios': '1.1', 'bmc': '2.0'}, {'bios': {'current': '1.1'}, 'bmc': {'current': '2.10'}}, read_at=read_at)
    assert result['reading_age'] == age
    if code is None:
        assert result['verdict'] == 'fail'  # bmc differs
        return
    assert (result['verdict'], result['reason_code']) == ('unknown', code)
    assert {row['verdict'] for row in result['modules']} == {'unknown'}
    assert {row['reason_code'] for row in result['modules']} == {code}
    assert rows(result)['bios'] == ('unknown', code, '1.1', '1.1')


def test_max_age_from_baseline_and_override():
    old = '2026-12-01T06:00:00Z'  # 72 hours
    assert verdict({'bios': '1.1'}, {'bios': {'current': '1.1'}}, read_at=old)['verdict'] == 'unknown'
    assert verdict({'bios': '1.1'}, {'bios': {'current': '1.1'}}, read_at=old, max_reading_age_hours=72)['verdict'] == 'pass'
    parsed = rules.combine({'modules': {'bios': '1.1'}, 'max_reading_age_hours': 72})
    forced = rules.server_verdict(parsed, Reading({'bios': {'current': '1.1'}}, old), [], NOW, max_age_hours=1)
    assert (forced['verdict'], forced['max_reading_age']) == ('unknown', 3600)


def test_unquoted_float_version_says_quote_it():
    with pytest.raises(BaselineError) as caught:
        rules.combine({'modules': {'bmc': 2.10}})
    assert 'quote it' in str(caught.value) and '2.1' in str(caught.value)


@pytest.mark.parametrize('hours', [0, -5, 10**9, True, '12'])
def test_max_age_option_out_of_range_is_refused_not_ignored(hours):
    parsed = rules.combine({'modules': {'bios': '1.1'}})
    with pytest.raises(rules.ExupError) as caught:
        rules.server_verdict(parsed, Reading({'bios': {'current': '1.1'}}, '2026-12-01T06:00:00Z'), [], NOW, max_age_hours=hours)
    assert caught.value.code == 'argument_invalid' and 'max_reading_age_hours' in str(caught.value)


def test_no_baseline_and_empty_baseline():
    none = rules.server_verdict(None, Reading({}, FRESH), [], NOW)
    assert (none['verdict'], none['reason_code'], none['modules']) == ('unknown', 'no_baseline', [])
    empty = verdict({}, {'bios': {'current': '1'}})
    assert (empty['verdict'], empty['reason_code']) == ('pass', 'empty_baseline')


def test_result_shape_is_stable_and_json_friendly():
    result = verdict({'bios': '1.1'}, {'bios': {'current': '1.1'}})
    assert json.loads(json.dumps(result)) == result
    assert set(result) == {'format', 'verdict', 'reason_code', 'reason', 'baseline', 'read_at', 'reading_age', 'max_reading_age', 'counts', 'modules'}
    assert set(result['modules'][0]) == {'module', 'current', 'target', 'target_spec', 'rule', 'verdict', 'reason_code', 'reason', 'reading_age'}
    assert set(rules.REASONS) >= {row['reason_code'] for row in result['modules']}
    assert rules.summary([result, dict(result, verdict='fail')]) == {'servers': 2, 'pass': 1, 'fail': 1, 'unknown': 0}


def test_every_reason_has_a_sentence():
    assert all(isinstance(text, str) and text for text in rules.REASONS.values())
