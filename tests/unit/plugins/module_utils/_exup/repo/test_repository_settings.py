# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository settings of 003 §3.3 on a real store (repository.py, service/credentials.py): the schedule, the
webhooks, the proxy, and the secrets kept out of repo.db in 0600 files, never returned nor logged."""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import auth, credentials

CHEAP = auth.Argon2Parameters(memory_cost_kib=8, iterations=1, lanes=1, salt_bytes=16, length=32)
ADMIN = 'admin password 0123'
READ = 'read password 4567'
PROXY_SECRET = 'proxy-Secret-9f83'
WEBHOOK_SECRET = 'webhook-Secret-77ab'
DEFAULTS = {
    'initial_manual_icon': 'update_available',
    'download_interval_hours': 0,
    'download_at': '03:00',
    'notify_webhooks': [],
    'proxy_url': '',
    'proxy_username': '',
    'proxy_auth': 'basic',
    'admin_password': 'not set',
    'read_password': 'not set',
    'proxy_password': 'not set',
    'webhook_secret': 'not set',
}


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    """Argon2 at test costs: 8 KiB, one pass (the real costs take 0.15 s a hash)."""
    monkeypatch.setattr(auth, 'ARGON2_PARAMETERS', CHEAP)


def events(repo, code=None):
    with repo.read() as index:
        rows = index.conn.execute('SELECT code, message, detail FROM events ORDER BY id').fetchall()
    found = [{'code': row[0], 'message': row[1], 'detail': json.loads(row[2])} for row in rows]
    return [item for item in found if code is None or item['code'] == code]


def store_files(repo):
    """Every file of the store with its bytes (the secrets' files too) and the whole database, events included."""
    found = {}
    for dirpath, _dirs, names in os.walk(repo.store.root):
        for name in names:
            path = os.path.join(dirpath, name)
            if name.startswith('repo.db'):
                continue
            with open(path, 'rb') as handle:
                found[os.path.relpath(path, repo.store.root)] = handle.read()
    conn = sqlite3.connect('file:%s?mode=ro' % repo.store.db_path, uri=True)
    try:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        found['tables'] = {table: sorted(map(tuple, conn.execute('SELECT * FROM %s' % table))) for table in names if table != 'meta'}
    finally:
        conn.close()
    return found


def database_text(repo):
    """Every byte SQLite keeps of the store (the database and its WAL): a secret must be in none of them."""
    data = b''
    for suffix in ('', '-wal'):
        if os.path.exists(repo.store.db_path + suffix):
            with open(repo.store.db_path + suffix, 'rb') as handle:
                data += handle.read()
    return data


def test_defaults_typed_values_and_history(repo, clock):
    assert repo.read_settings(check_mode=True) == DEFAULTS
    assert not repo.store.exists
    before, after = repo.change_settings({'download_interval_hours': 6, 'download_at': '02:30', 'notify_webhooks': ['https://hooks.example/a']})
    assert before == DEFAULTS
    assert after == dict(DEFAULTS, download_interval_hours=6, download_at='02:30', notify_webhooks=['https://hooks.example/a'])
    first = clock.now
    clock.advance(hours=1)
    repo.change_settings({'download_interval_hours': '12'})  # the service's JSON may carry the number as text
    assert repo.read_settings(check_mode=True)['download_interval_hours'] == 12
    with repo.read() as index:
        assert repo.settings(index, at=first.strftime('%Y-%m-%dT%H:%M:%SZ'))['download_interval_hours'] == 6
        stored = dict(index.setting_changes())
    assert stored['notify_webhooks'] == '["https://hooks.example/a"]' and stored['download_interval_hours'] == '12'
    changed = events(repo, 'settings_changed')
    assert changed[-1]['detail'] == {'before': {'download_interval_hours': 6}, 'after': {'download_interval_hours': 12}}


def test_the_same_values_again_change_nothing_and_log_nothing(repo):
    wanted = {'download_interval_hours': 24, 'proxy_url': 'http://proxy.example:3128', 'proxy_auth': 'digest', 'notify_webhooks': []}
    repo.change_settings(wanted)
    state = store_files(repo)
    before, after = repo.change_settings(wanted)
    assert before == after and store_files(repo) == state


BAD: list[tuple[dict, str, str]] = [
    ({'download_interval_hours': 745}, 'setting_invalid', 'download_interval_hours must be 0 (no scheduled download) or a whole number of hours from 1 to 744'),
    ({'download_interval_hours': -1}, 'setting_invalid', 'not -1'),
    ({'download_interval_hours': True}, 'setting_invalid', 'not True'),
    ({'download_interval_hours': 1.5}, 'setting_invalid', 'not 1.5'),
    ({'download_at': '24:00'}, 'setting_invalid', 'download_at must be the time of day of the first run, UTC, as HH:MM'),
    ({'download_at': '3:00'}, 'setting_invalid', 'as HH:MM'),
    ({'notify_webhooks': 'https://hooks.example/a'}, 'setting_invalid', 'notify_webhooks must be a list of at most 8'),
    ({'notify_webhooks': ['https://hooks.example/%d' % n for n in range(9)]}, 'setting_invalid', '9 URLs are given'),
    ({'notify_webhooks': ['ftp://hooks.example/a']}, 'setting_invalid', 'notify_webhooks[0] is not an http:// or https:// URL'),
    ({'notify_webhooks': ['https://user:pw@hooks.example/a']}, 'setting_invalid', 'carries a user name or password'),
    ({'notify_webhooks': ['https://hooks.example/a', 'https://hooks.example/a']}, 'setting_invalid', 'a URL is given twice'),
    ({'proxy_url': 'proxy.example:3128'}, 'setting_invalid', 'proxy_url must look like http://host:port'),
    ({'proxy_url': 'http://u:secret-in-url@proxy.example:3128'}, 'setting_invalid', 'give proxy_username and proxy_password instead'),
    ({'proxy_url': 'http://proxy.example:99999'}, 'setting_invalid', 'proxy_url is not a URL'),
    ({'proxy_url': 'http://proxy.example:3128/\r\nX: y'}, 'setting_invalid', 'control character'),
    ({'proxy_username': 'a:b'}, 'setting_invalid', 'without a colon'),
    ({'proxy_username': 5}, 'setting_invalid', 'proxy_username must be a text, not int'),
    ({'proxy_auth': 'ntlm'}, 'setting_invalid', 'proxy_auth must be one of basic, digest'),
    ({'initial_manual_icon': 'rainbow'}, 'setting_invalid', 'must be one of latest, update_available, no_package'),
    ({'feed_url': 'http://x'}, 'setting_invalid', "unknown setting 'feed_url'"),
    ({}, 'setting_invalid', 'give at least one setting'),
    ({'admin_password': 'short'}, 'password_weak', 'the password must have at least 12 characters'),
    ({'admin_password': ''}, 'password_weak', 'the password must have at least 12 characters'),
    ({'read_password': 'x' * 1025}, 'password_invalid', 'at most 1024 bytes'),
    ({'admin_password': 12345678901234}, 'password_invalid', 'the password must be text'),
    ({'proxy_password': 'line\nbreak'}, 'setting_invalid', 'proxy_password must be text of 1 to 1024 bytes'),
    # one bad value among good ones: nothing of the good ones is applied either
    ({'download_interval_hours': 6, 'admin_password': ADMIN, 'download_at': '7am'}, 'setting_invalid', 'as HH:MM'),
    ({'download_interval_hours': 6, 'proxy_password': PROXY_SECRET, 'read_password': 'tiny'}, 'password_weak', 'at least 12'),
]


@pytest.mark.parametrize(('wanted', 'code', 'words'), BAD, ids=['%d-%s' % (n, ','.join(w)) for n, (w, _c, _m) in enumerate(BAD)])
def test_a_bad_value_changes_nothing_and_logs_settings_change_failed(repo, wanted, code, words):
    repo.change_settings({'download_interval_hours': 1, 'admin_password': 'the first admin pw', 'proxy_password': 'first proxy pw'})
    state = store_files(repo)
    logged = len(events(repo))
    with pytest.raises(RepositoryError) as error:
        repo.change_settings(wanted)
    assert error.value.code == code and words in error.value.msg and len(error.value.msg) < 400, error.value.msg
    after = store_files(repo)
    failed = events(repo)[logged:]
    assert [item['code'] for item in failed] == ['settings_change_failed']
    assert failed[0]['detail'] == {'settings': sorted(wanted), 'error': code}
    # nothing else changed: every file, every row but that one event
    after['tables']['events'] = after['tables']['events'][:logged]
    assert after == state
    shown = error.value.msg + json.dumps(failed)
    assert 'secret-in-url' not in shown  # a refused proxy URL is not repeated: it may carry a password
    for key in credentials.SECRETS:
        if isinstance(wanted.get(key), str) and len(wanted[key]) >= 4:
            assert wanted[key] not in shown


def test_passwords_are_hashes_in_a_0600_file_never_in_the_database_nor_the_result(repo):
    before, after = repo.change_settings({'admin_password': ADMIN, 'read_password': READ, 'proxy_password': PROXY_SECRET, 'webhook_secret': WEBHOOK_SECRET})
    assert {key: before[key] for key in credentials.SECRETS} == {key: 'not set' for key in credentials.SECRETS}
    assert {key: after[key] for key in credentials.SECRETS} == {key: 'changed' for key in credentials.SECRETS}
    for name in (credentials.CREDENTIALS_FILE, credentials.SECRETS_FILE):
        mode = stat.S_IMODE(os.stat(os.path.join(repo.store.root, name)).st_mode)
        assert mode == 0o600, (name, oct(mode))
    with open(os.path.join(repo.store.root, credentials.CREDENTIALS_FILE), encoding='utf-8') as handle:
        hashes = json.load(handle)
    assert sorted(hashes) == ['admin_hash', 'read_hash']
    assert auth.verify_password(hashes['admin_hash'], ADMIN) and auth.verify_password(hashes['read_hash'], READ)
    auth.Credentials.from_dict(hashes)  # the service's own reading of the file
    text = json.dumps([before, after, events(repo), repo.read_settings()])
    data = database_text(repo)
    for secret in (ADMIN, READ, PROXY_SECRET, WEBHOOK_SECRET):
        assert secret not in text and secret.encode() not in data
    assert repo.read_settings(check_mode=True) == dict(DEFAULTS, admin_password='set', read_password='set', proxy_password='set', webhook_secret='set')
    changed = events(repo, 'settings_changed')[-1]['detail']
    assert changed['after'] == {key: 'changed' for key in credentials.SECRETS}


def test_a_password_that_verifies_is_not_changed_and_check_mode_decides_without_writing(repo):
    repo.change_settings({'admin_password': ADMIN, 'read_password': READ})
    state = store_files(repo)
    before, after = repo.change_settings({'admin_password': ADMIN, 'read_password': READ})
    assert before == after and store_files(repo) == state  # no new salt, no rewrite, no event
    before, after = repo.change_settings({'admin_password': 'another admin pw'}, check_mode=True)
    assert (before['admin_password'], after['admin_password'], after['read_password']) == ('set', 'changed', 'set')
    assert store_files(repo) == state
    repo.change_settings({'admin_password': 'another admin pw'})
    hashes = credentials.read_credentials(repo.store.root)
    assert auth.verify_password(hashes['admin_hash'], 'another admin pw') and not auth.verify_password(hashes['admin_hash'], ADMIN)
    assert auth.verify_password(hashes['read_hash'], READ)  # the other password stays


def test_removing_the_read_password_and_the_kept_secrets(repo):
    repo.change_settings({'admin_password': ADMIN, 'read_password': READ, 'proxy_password': PROXY_SECRET})
    before, after = repo.change_settings({'read_password': '', 'proxy_password': ''})
    assert (after['read_password'], after['proxy_password'], after['admin_password']) == ('changed', 'changed', 'set')
    assert sorted(credentials.read_credentials(repo.store.root)) == ['admin_hash']
    assert credentials.read_kept_secrets(repo.store.root) == {}
    before, after = repo.change_settings({'read_password': ''})  # not set: nothing to remove
    assert before == after


def test_a_read_password_without_an_admin_password_is_refused(repo):
    with pytest.raises(RepositoryError) as error:
        repo.change_settings({'read_password': READ, 'download_interval_hours': 5})
    assert error.value.code == 'credentials_missing' and 'set admin_password too' in error.value.msg
    assert not os.path.exists(os.path.join(repo.store.root, credentials.CREDENTIALS_FILE))
    assert repo.read_settings(check_mode=True)['download_interval_hours'] == 0


def test_a_damaged_credentials_file_is_replaced_by_a_new_admin_password(repo):
    repo.change_settings({'download_interval_hours': 1})
    path = os.path.join(repo.store.root, credentials.CREDENTIALS_FILE)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('{not json')
    with pytest.raises(RepositoryError) as error:
        repo.change_settings({'read_password': READ})
    assert error.value.code == 'credentials_invalid' and 'write it again with exup_repo_settings' in error.value.msg
    repo.change_settings({'admin_password': ADMIN})
    assert auth.verify_password(credentials.read_credentials(repo.store.root)['admin_hash'], ADMIN)


def test_proxy_options_give_the_http_client_its_proxy(repo):
    assert repo.proxy_options() == {'proxy_url': None, 'proxy_username': None, 'proxy_password': None, 'proxy_auth': 'basic'}
    repo.change_settings({'proxy_url': 'http://proxy.example:3128', 'proxy_username': 'exup', 'proxy_password': PROXY_SECRET, 'proxy_auth': 'digest'})
    assert repo.proxy_options() == {'proxy_url': 'http://proxy.example:3128', 'proxy_username': 'exup', 'proxy_password': PROXY_SECRET, 'proxy_auth': 'digest'}
    repo.change_settings({'proxy_url': ''})
    assert repo.proxy_options()['proxy_url'] is None


def test_a_hand_edited_row_reads_as_the_default(repo):
    repo.change_settings({'download_interval_hours': 6})
    with repo.store.writer() as index, index.transaction():
        index.add_setting_changes({'download_interval_hours': 'lots', 'notify_webhooks': '{bad'}, '2099-01-01T00:00:00Z')
    values = repo.read_settings(check_mode=True)
    assert (values['download_interval_hours'], values['notify_webhooks']) == (0, [])


def test_secret_files_are_written_whole_and_private(tmp_path):
    path = str(tmp_path / 'secret.json')
    old = os.umask(0o000)
    try:
        credentials.write_private_json(path, {'a': 'b'})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert credentials.read_private_json(path, 'x') == {'a': 'b'} and sorted(os.listdir(tmp_path)) == ['secret.json']
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('[1]')
    with pytest.raises(Exception) as error:
        credentials.read_private_json(path, 'test secrets')
    assert getattr(error.value, 'code', None) == 'credentials_invalid'
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('{"a": "%s"}' % ('x' * credentials.FILE_LIMIT))
    with pytest.raises(Exception) as error:
        credentials.read_private_json(path, 'test secrets')
    assert getattr(error.value, 'code', None) == 'credentials_invalid'
