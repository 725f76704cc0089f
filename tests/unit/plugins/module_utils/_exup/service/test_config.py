# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository service's configuration file: every field checked before the service takes its port."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import config, wire
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.config import ServiceConfig, config_from_dict, read_config


def refused(data) -> ExupError:
    with pytest.raises(ExupError) as caught:
        config_from_dict(data)
    assert caught.value.code == 'config_invalid'
    return caught.value


def test_a_minimal_configuration_has_the_documented_defaults(tmp_path):
    chosen = config_from_dict({'store': str(tmp_path / 'store')})
    assert chosen == ServiceConfig(store=str(tmp_path / 'store'))
    assert (chosen.host, chosen.port, chosen.workers, chosen.manager_id) == ('127.0.0.1', wire.DEFAULT_PORT, 1, 'local')
    assert (chosen.tls_certificate, chosen.tls_key, chosen.feed_url, chosen.trusted_keys) == (None, None, None, ())
    assert chosen.credentials_path == str(tmp_path / 'store' / 'service-credentials.json')
    assert chosen.base_url == 'http://127.0.0.1:%d' % wire.DEFAULT_PORT


def test_a_full_configuration_is_taken_whole_and_its_store_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = {
        'store': 'store',
        'host': '0.0.0.0',
        'port': 8443,
        'tls_certificate': '/etc/exup/cert.pem',
        'tls_key': '/etc/exup/key.pem',
        'feed_url': 'https://feed.example/catalog.json',
        'trusted_keys': ['/etc/exup/vendor.pub'],
        'workers': 4,
        'manager_id': 'repo-host',
    }
    chosen = config_from_dict(data)
    assert chosen.store == os.path.join(str(tmp_path), 'store')
    assert chosen.trusted_keys == ('/etc/exup/vendor.pub',)
    assert (chosen.host, chosen.port, chosen.workers, chosen.manager_id, chosen.feed_url) == ('0.0.0.0', 8443, 4, 'repo-host', data['feed_url'])
    assert chosen.base_url == 'https://0.0.0.0:8443'


@pytest.mark.parametrize('data', [None, [], 'store', 42, [['store', '/x']]])
def test_a_configuration_that_is_not_an_object_is_config_invalid(data):
    assert refused(data).msg == 'the service configuration must be a JSON object'


def test_an_unknown_setting_is_config_invalid_naming_it_and_the_settings():
    error = refused({'store': '/x', 'password': 'hunter2', 'Port': 1})
    assert error.msg.startswith('unknown setting Port, password in the service configuration; the settings are store, host, port, ')


@pytest.mark.parametrize('store', [None, '', 3, ['/x'], {'path': '/x'}])
def test_a_missing_or_bad_store_is_config_invalid(store):
    data = {} if store is None else {'store': store}
    assert refused(data).msg == 'the service configuration needs store: the path of the repository on this host'


@pytest.mark.parametrize('port', [0, -1, 65536, True, '8080', 80.0, None])
def test_a_bad_port_is_config_invalid(port):
    assert refused({'store': '/x', 'port': port}).msg == 'port must be a number from 1 to 65535'


@pytest.mark.parametrize('port', [1, 65535])
def test_the_port_range_includes_its_ends(port):
    assert config_from_dict({'store': '/x', 'port': port}).port == port


@pytest.mark.parametrize('workers', [0, 65, True, '2', 2.0, None])
def test_a_bad_worker_count_is_config_invalid(workers):
    assert refused({'store': '/x', 'workers': workers}).msg == 'workers must be a number from 1 to 64'


@pytest.mark.parametrize('tls', [{'tls_certificate': '/c.pem'}, {'tls_key': '/k.pem'}, {'tls_certificate': '/c.pem', 'tls_key': ''}])
def test_a_tls_certificate_without_its_key_or_the_other_way_round_is_config_invalid(tls):
    assert refused(dict({'store': '/x'}, **tls)).msg == 'give tls_certificate and tls_key together (HTTPS), or neither (HTTP)'


@pytest.mark.parametrize('keys', ['/etc/exup/vendor.pub', {'k': 'v'}, [1], ['/ok.pub', None], 5])
def test_trusted_keys_that_are_not_a_list_of_texts_are_config_invalid(keys):
    assert refused({'store': '/x', 'trusted_keys': keys}).msg == 'trusted_keys must be a list of key file paths or PEM texts'


@pytest.mark.parametrize('name', ['host', 'feed_url', 'manager_id'])
@pytest.mark.parametrize('value', [1, ['x'], {'x': 1}, True])
def test_a_text_setting_of_another_type_is_config_invalid_naming_it(name, value):
    assert refused({'store': '/x', name: value}).msg == '%s must be a string' % name


@pytest.mark.parametrize('value', [1, ['x']])
def test_tls_files_of_another_type_are_config_invalid(value):
    assert refused({'store': '/x', 'tls_certificate': value, 'tls_key': value}).msg == 'tls_certificate must be a string'


# ----------------------------------------------------------------- the file


def test_read_config_reads_a_json_file(tmp_path):
    path = tmp_path / 'service.json'
    path.write_text(json.dumps({'store': str(tmp_path), 'port': 9000}))
    assert read_config(str(path)) == ServiceConfig(store=str(tmp_path), port=9000)


def test_a_missing_configuration_file_is_config_invalid_naming_it(tmp_path):
    path = tmp_path / 'absent.json'
    with pytest.raises(ExupError) as caught:
        read_config(str(path))
    assert caught.value.code == 'config_invalid'
    assert caught.value.msg == 'cannot read the service configuration %s: No such file or directory' % path


def test_a_folder_as_configuration_file_is_config_invalid(tmp_path):
    with pytest.raises(ExupError) as caught:
        read_config(str(tmp_path))
    assert caught.value.code == 'config_invalid'
    assert caught.value.msg.startswith('cannot read the service configuration %s: ' % tmp_path)


def test_a_configuration_file_over_1_mib_is_config_invalid_without_parsing_it(tmp_path):
    path = tmp_path / 'service.json'
    padding = ' ' * config.CONFIG_LIMIT
    path.write_text('{"store": "/x"}' + padding)  # valid JSON, just too large
    with pytest.raises(ExupError) as caught:
        read_config(str(path))
    assert caught.value.code == 'config_invalid'
    assert caught.value.msg == 'the service configuration %s is larger than 1 MiB' % path


def test_a_configuration_file_of_exactly_the_limit_is_read(tmp_path):
    path = tmp_path / 'service.json'
    text = '{"store": "/x"}'
    path.write_text(text + ' ' * (config.CONFIG_LIMIT - len(text)))
    assert read_config(str(path)).store == '/x'


@pytest.mark.parametrize('text', [b'', b'{', b'store: /x', b'{"store": "/x",}', b'\xff\xfe{}', b'[' * 100000])
def test_a_configuration_file_that_is_not_json_is_config_invalid(tmp_path, text):
    path = tmp_path / 'service.json'
    path.write_bytes(text)
    with pytest.raises(ExupError) as caught:
        read_config(str(path))
    assert caught.value.code == 'config_invalid'
    assert caught.value.msg.startswith('the service configuration %s is not JSON: ' % path)


def test_a_json_file_of_another_shape_is_config_invalid(tmp_path):
    path = tmp_path / 'service.json'
    path.write_text('["/x"]')
    with pytest.raises(ExupError) as caught:
        read_config(str(path))
    assert caught.value.code == 'config_invalid'
    assert caught.value.msg == 'the service configuration must be a JSON object'


@pytest.mark.parametrize(
    'fields, words',
    [
        ({'upstream': 'mirror'}, 'upstream must be vendor'),
        ({'upstream': 'repository'}, 'upstream repository needs feed_url'),
        ({'feed_username': 'admin'}, 'give feed_username and feed_password_file together'),
        ({'feed_password_file': '/etc/exup/pw'}, 'give feed_username and feed_password_file together'),
        ({'feed_ca_path': 3}, 'feed_ca_path must be a string'),
    ],
)
def test_an_upstream_setting_that_cannot_work_is_config_invalid(fields, words):
    assert words in refused(dict({'store': '/srv/exup'}, **fields)).msg


def test_the_feed_password_is_read_from_its_file_only_when_asked(tmp_path):
    secret = tmp_path / 'pw'
    chosen = config_from_dict(
        {'store': '/srv/exup', 'feed_url': 'https://dmz:8080', 'upstream': 'repository', 'feed_username': 'admin', 'feed_password_file': str(secret)}
    )
    with pytest.raises(ExupError) as missing:
        chosen.feed_password()
    assert missing.value.code == 'config_invalid' and 'cannot read feed_password_file' in missing.value.msg
    secret.write_text('')
    with pytest.raises(ExupError) as empty:
        chosen.feed_password()
    assert 'must hold the password on its first line' in empty.value.msg
    secret.write_text('s3cret-for-the-dmz\nignored\n')
    assert chosen.feed_password() == 's3cret-for-the-dmz'
    assert 's3cret' not in repr(chosen)  # the configuration holds the file's path, never the password
