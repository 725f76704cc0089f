# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The BMC path core (bmc/client.py): configuration, TLS verification against a CA, component mapping,
IPMI revision decoding, Redfish answers and tasks, and run_plan's order and failure rules.

No network beyond the loopback: where a Redfish or IPMI BMC would answer, a small fake stands in for it (the
system tests run the same code against real emulators). KeptConnection talks to a real HTTPS server on 127.0.0.1
(_KeepingServer), which closes connections as a BMC does; only the race of a close between the client's check of
its socket and its send is made certain by telling the check the socket is usable.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import importlib.util
import json
import os
import pathlib
import select
import socket
import ssl
import threading
import time
import types

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.bmc import client as bmc
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import plan

pyghmi_exceptions = pytest.importorskip('pyghmi.exceptions')
x509 = pytest.importorskip('cryptography.x509')
serialization = pytest.importorskip('cryptography.hazmat.primitives.serialization')

BIOS = 'system-bios'
BMC = 'bmc-firmware'
TASK = '/redfish/v1/TaskService/Tasks/1'


def config(**fields):
    values = {'address': '127.0.0.1', 'username': 'admin', 'password': 'secret'}
    values.update(fields)
    return bmc.BmcConfig(**values)


def refused(code, call, *args, **kwargs):
    """Run ``call`` expecting a BmcError with ``code``; return the error."""
    with pytest.raises(bmc.BmcError) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value.msg
    return info.value


# --- certificates: real ones, written by the system tests' helper ---


def _tls():
    """tests/services/tls.py, loaded by path (it is not a package the unit tests can import)."""
    path = pathlib.Path(__file__).resolve().parents[5] / 'services' / 'tls.py'
    spec = importlib.util.spec_from_file_location('exup_test_tls', str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tls(tmp_path_factory):
    """Two independent CAs, each with a server certificate (SAN: its name and 127.0.0.1): DER leaves and CA paths."""
    make_tls_files = _tls().make_tls_files

    def make(name, hostname):
        directory = tmp_path_factory.mktemp(name)
        files = make_tls_files(directory, hostname=hostname)
        leaf = x509.load_pem_x509_certificate(files.cert_path.read_bytes())
        return str(files.ca_path), leaf.public_bytes(serialization.Encoding.DER), leaf

    ca_path, der, leaf = make('ca', 'bmc1.example')
    other_ca_path, other_der, _other_leaf = make('other-ca', 'bmc1.example')
    return {'ca_path': ca_path, 'der': der, 'leaf': leaf, 'other_ca_path': other_ca_path, 'other_der': other_der}


def test_the_test_certificate_names_the_bmc_address(tls):
    san = tls['leaf'].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert '127.0.0.1' in [str(address) for address in san.get_values_for_type(x509.IPAddress)]
    assert san.get_values_for_type(x509.DNSName) == ['bmc1.example']


def test_a_certificate_issued_by_the_ca_for_the_address_passes(tls):
    verify = bmc.certificate_verifier(config(ca_path=tls['ca_path']))
    assert verify(tls['der']) is True


def test_a_certificate_issued_by_the_ca_for_the_dns_name_passes(tls):
    verify = bmc.certificate_verifier(config(address='bmc1.example', ca_path=tls['ca_path']))
    assert verify(tls['der']) is True


def test_a_certificate_of_another_ca_is_untrusted(tls):
    verify = bmc.certificate_verifier(config(ca_path=tls['ca_path']))
    error = refused('certificate_untrusted', verify, tls['other_der'])
    assert '127.0.0.1' in error.msg and 'ca_path' in error.msg


@pytest.mark.parametrize('address', ['127.0.0.2', 'bmc2.example'])
def test_a_certificate_for_another_name_is_untrusted(tls, address):
    verify = bmc.certificate_verifier(config(address=address, ca_path=tls['ca_path']))
    refused('certificate_untrusted', verify, tls['der'])


def test_garbage_instead_of_a_certificate_is_untrusted(tls):
    verify = bmc.certificate_verifier(config(ca_path=tls['ca_path']))
    refused('certificate_untrusted', verify, b'not a certificate')


def test_validate_certs_false_accepts_anything(tls):
    verify = bmc.certificate_verifier(config(validate_certs=False, ca_path=tls['ca_path']))
    assert verify(tls['other_der']) is True
    assert verify(b'not a certificate') is True


def test_without_ca_path_the_standard_library_validates():
    assert bmc.certificate_verifier(config()) is None


@pytest.mark.parametrize('content', [None, b'', b'-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', b'no PEM here'])
def test_an_unusable_ca_path_is_an_invalid_argument(tmp_path, content):
    path = tmp_path / 'ca.pem'
    if content is not None:
        path.write_bytes(content)
    error = refused('argument_invalid', bmc.certificate_verifier, config(ca_path=str(path)))
    assert str(path) in error.msg


@pytest.mark.skipif(hasattr(os, 'geteuid') and os.geteuid() == 0, reason='root reads any file')
def test_an_unreadable_ca_path_is_an_invalid_argument(tmp_path, tls):
    path = tmp_path / 'ca.pem'
    path.write_bytes(pathlib.Path(tls['ca_path']).read_bytes())
    path.chmod(0)
    refused('argument_invalid', bmc.certificate_verifier, config(ca_path=str(path)))


@pytest.mark.parametrize('where', ['.', 'file/ca.pem'])
def test_a_directory_or_a_path_below_a_file_as_ca_path_is_an_invalid_argument(tmp_path, where):
    (tmp_path / 'file').write_bytes(b'')
    refused('argument_invalid', bmc.certificate_verifier, config(ca_path=str(tmp_path / where)))


# --- configuration ---


def test_config_defaults():
    conf = config()
    assert (conf.protocol, conf.validate_certs, conf.ca_path, conf.port, conf.timeout) == ('redfish', True, None, None, 60)


def test_config_refuses_an_unknown_protocol():
    error = refused('argument_invalid', config, protocol='ssh')
    assert 'redfish' in error.msg and 'ipmi' in error.msg


@pytest.mark.parametrize(
    'system, sysurl',
    [
        (None, None),
        ('', None),
        ('System.Embedded.1', '/redfish/v1/Systems/System.Embedded.1'),
        ('/redfish/v1/Systems/2', '/redfish/v1/Systems/2'),
    ],
)
def test_sysurl_from_an_id_or_a_path(system, sysurl):
    assert config(system=system).sysurl == sysurl


def test_connect_chooses_the_client_by_protocol():
    assert isinstance(bmc.connect(config()), bmc.RedfishBmc)
    assert isinstance(bmc.connect(config(protocol='ipmi')), bmc.IpmiBmc)


# --- inventory members -> modules ---


@pytest.mark.parametrize(
    'name, component_id, module_id',
    [
        ('BIOS', 'BIOS', BIOS),
        ('System BIOS', None, BIOS),
        ('UEFI Firmware', 'uefi', BIOS),
        (None, 'Installed-0-BIOS', BIOS),
        ('BMC', 'bmc_active', BMC),
        ('Integrated Dell Remote Access Controller', 'Installed-25227-iDRAC', BMC),
        ('XCC Primary', 'BMC-Primary', BMC),
        ('iLO 5', '1', BMC),
        ('Manager Firmware', 'mgr', BMC),
        ('Broadcom NIC', 'NIC.Integrated.1', None),
        ('', '', None),
        (None, None, None),
    ],
)
def test_module_of_component(name, component_id, module_id):
    assert bmc.module_of_component(name, component_id) == module_id


@pytest.mark.parametrize(
    'name, component_id, related, module_id',
    [
        ('NIC', 'bmc1-server-2.NIC', ['/redfish/v1/Systems/2/EthernetInterfaces/52:54:00:00:01:10'], None),  # 'bmc' in the system's name
        ('BIOS', 'bmc1-server-2.BIOS', ['/redfish/v1/Systems/2'], BIOS),
        ('Firmware', 'fw-1', ['/redfish/v1/Managers/2'], BMC),
        ('BIOS', 'BIOS', ['/redfish/v1/Chassis/1'], BIOS),  # a link that says nothing: the words decide
    ],
)
def test_module_of_component_follows_related_items(name, component_id, related, module_id):
    assert bmc.module_of_component(name, component_id, related) == module_id


# --- IPMI Get Device ID ---


@pytest.mark.parametrize(
    'data, revision',
    [
        (bytes([0x20, 0x81, 0x02, 0x05, 0x02]), '2.05'),
        (bytes([0x20, 0x81, 0x02, 0x10]), '2.10'),
        (bytes([0x20, 0x81, 0x7F, 0x99, 0x02, 0xBF]), '127.99'),
        (bytes([0x20, 0x81, 0x82, 0x05]), '2.05'),  # bit 7: device busy (update in progress), not part of the major
        (bytes([0x20, 0x81, 0xFF, 0x99]), '127.99'),
        (bytes([0x20, 0x81, 0x00, 0x00]), '0.00'),
    ],
)
def test_ipmi_firmware_revision(data, revision):
    assert bmc.ipmi_firmware_revision(data) == revision


@pytest.mark.parametrize('data', [b'', b'\x20', b'\x20\x81\x02'])
def test_a_short_get_device_id_answer_is_a_protocol_error(data):
    error = refused('bmc_protocol', bmc.ipmi_firmware_revision, data)
    assert '(%d bytes)' % len(data) in error.msg


# --- Redfish messages and resets ---


@pytest.mark.parametrize(
    'messages',
    [
        [{'MessageId': 'Base.1.8.ResetRequired', 'Message': 'In order to complete the operation, a component reset is required.'}],
        [{'MessageId': 'Update.1.0.UpdateSuccessful'}, {'MessageId': 'Base.1.0.ResetRequired'}],
        [{'MessageId': 'Oem.1.0.Done', 'Message': 'Reset required to activate the new firmware'}],
        [{'MessageId': 'Oem.1.0.Done', 'Message': 'The update takes effect after the next REBOOT'}],
        [{'Message': 'Power cycle the server to apply'}],
        [{'MessageId': 'Update.1.0.OperationTransitionedToJob', 'Message': 'Scheduled OnReset'}],
    ],
)
def test_needs_reset_when_a_message_asks_for_it(messages):
    assert bmc.needs_reset({'TaskState': 'Completed', 'Messages': messages}) is True


@pytest.mark.parametrize(
    'task',
    [
        {},
        {'Messages': None},
        {'Messages': []},
        {'Messages': [{'MessageId': 'Update.1.0.UpdateSuccessful', 'Message': 'The update completed successfully.'}]},
        {'Messages': [{'MessageId': 'Base.1.0.Success'}, {}]},
        {'Messages': ['a text, not a Message object', None]},
    ],
)
def test_no_reset_when_no_message_asks_for_it(task):
    assert bmc.needs_reset(task) is False


def test_redfish_message_of_an_error_joins_its_extended_info():
    body = {
        'error': {
            'code': 'Base.1.8.GeneralError',
            'message': 'A general error has occurred.',
            '@Message.ExtendedInfo': [
                {'MessageId': 'Update.1.0.InvalidImage', 'Message': 'The image is not valid.'},
                {'MessageId': 'Base.1.0.NoMessage'},
                {'Message': 'Signature check failed.'},
            ],
        }
    }
    assert bmc.redfish_message(body) == 'The image is not valid.; Signature check failed.'


def test_redfish_message_of_an_error_without_extended_info_is_its_message():
    assert bmc.redfish_message({'error': {'message': 'A general error has occurred.'}}) == 'A general error has occurred.'


def test_redfish_message_of_a_task_joins_its_messages():
    task = {'TaskState': 'Exception', 'Messages': [{'Message': 'Flash failed.'}, 'not a message', {'Message': 'Retry later.'}]}
    assert bmc.redfish_message(task) == 'Flash failed.; Retry later.'


@pytest.mark.parametrize('body', [None, '', 'text', [], {}, {'Messages': []}, {'error': {}}, {'TaskState': 'Completed'}])
def test_redfish_message_of_nothing_is_empty(body):
    assert bmc.redfish_message(body) == ''


# --- following a task ---


class FakeClock:
    """monotonic() and sleep() of a test: sleeping only moves the clock."""

    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def redfish(answers, clock=None):
    """A RedfishBmc whose requests are answered from ``answers`` (the last repeats), standing in for the BMC."""
    clock = clock or FakeClock()
    client = bmc.RedfishBmc(config(), clock=clock, sleep=clock.sleep)
    client.requested = []
    answers = list(answers)

    def request(url, payload=None, method=None):
        client.requested.append(url)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    client.request = request
    return client, clock


def test_follow_returns_the_completed_task_and_reports_each_change():
    answers = [
        {'TaskState': 'New'},
        {'TaskState': 'Running', 'PercentComplete': 10},
        {'TaskState': 'Running', 'PercentComplete': 10},
        {'TaskState': 'Running', 'PercentComplete': 60},
        {'TaskState': 'Completed', 'PercentComplete': 100, 'Messages': []},
    ]
    client, clock = redfish(answers)
    seen = []
    task = client.follow(TASK, 60, poll_interval=3, progress=lambda state, percent: seen.append((state, percent)))
    assert task == {'TaskState': 'Completed', 'PercentComplete': 100, 'Messages': []}
    assert seen == [('New', None), ('Running', 10), ('Running', 60), ('Completed', 100)]
    assert client.requested == [TASK] * 5
    assert clock.slept == [3] * 4


def test_follow_without_progress_callback():
    client, clock = redfish([{'TaskState': 'Running'}, {'TaskState': 'Completed'}])
    assert client.follow(TASK, 60)['TaskState'] == 'Completed'
    assert clock.slept == [2.0]


@pytest.mark.parametrize('state', bmc.TASK_FAILED)
def test_a_failed_task_is_an_error_with_its_message(state):
    task = {'TaskState': state, 'Messages': [{'MessageId': 'Update.1.0.ApplyFailed', 'Message': 'The image could not be applied.'}]}
    client, _clock = redfish([{'TaskState': 'Running'}, task])
    error = refused('bmc_task_failed', client.follow, TASK, 60)
    assert 'The image could not be applied.' in error.msg and state in error.msg and TASK in error.msg
    assert error.details == {'task_state': state}


def test_a_failed_task_without_messages_says_so():
    client, clock = redfish([{'TaskState': 'Exception'}])
    assert 'no message' in refused('bmc_task_failed', client.follow, TASK, 60).msg
    assert clock.slept == []


def test_a_task_that_never_ends_times_out_without_real_sleeping():
    client, clock = redfish([{'TaskState': 'Running', 'PercentComplete': 40}])
    error = refused('bmc_task_timeout', client.follow, TASK, 10, poll_interval=2)
    assert error.details == {'task_state': 'Running'}
    assert 'within 10 s' in error.msg and '40%' in error.msg
    assert clock.now == 10 and clock.slept == [2] * 5
    assert len(client.requested) == 6


def test_a_task_without_state_times_out_as_unknown():
    client, _clock = redfish([{}])
    assert refused('bmc_task_timeout', client.follow, TASK, 0).details == {'task_state': 'Unknown'}
    assert client.requested == [TASK]


# --- the answer to an update request ---


@pytest.mark.parametrize(
    'status, answer, task',
    [
        (202, {'@odata.id': TASK, 'TaskState': 'New', 'TaskMonitor': '/redfish/v1/TaskService/TaskMonitors/1'}, TASK),
        (202, b'{"@odata.id": "/redfish/v1/TaskService/Tasks/7", "TaskState": "New"}', '/redfish/v1/TaskService/Tasks/7'),
        (200, '{"@odata.id": "/redfish/v1/TaskService/Tasks/8"}', '/redfish/v1/TaskService/Tasks/8'),
        (202, {'TaskMonitor': '/redfish/v1/TaskService/TaskMonitors/3'}, '/redfish/v1/TaskService/TaskMonitors/3'),
    ],
)
def test_the_task_of_an_accepted_update(status, answer, task):
    client, _clock = redfish([{}])
    assert client._task_from_answer(status, answer) == task


def test_a_redfish_error_is_a_rejection_with_its_message_and_status():
    client, _clock = redfish([{}])
    answer = (
        b'{"error": {"code": "Base.1.8.GeneralError", "message": "See ExtendedInfo", "@Message.ExtendedInfo": '
        b'[{"MessageId": "Update.1.0.InvalidImage", "Message": "The image signature is not valid."}]}}'
    )
    error = refused('bmc_rejected', client._task_from_answer, 400, answer)
    assert 'HTTP 400' in error.msg and 'The image signature is not valid.' in error.msg
    assert error.details == {'http_status': 400}


@pytest.mark.parametrize(
    'status, answer',
    [
        (500, 'Target Unavailable'),
        (503, b''),
        (302, {}),
        (199, {}),
        (None, ''),
        (400, b'\xff\xfe not json'),
        (400, '{"error": "plain text error"}'),
        (400, '{"error": null}'),
    ],
)
def test_any_other_status_is_a_rejection(status, answer):
    client, _clock = redfish([{}])
    assert refused('bmc_rejected', client._task_from_answer, status, answer).details == {'http_status': status}


@pytest.mark.parametrize(
    'answer',
    [
        {},
        b'',
        '',
        None,
        b'[]',
        'plain text',
        {'@Message.ExtendedInfo': [{'MessageId': 'Base.1.0.Success'}]},
    ],
)
def test_an_accepted_update_without_a_task_is_a_protocol_error(answer):
    client, _clock = redfish([{}])
    refused('bmc_protocol', client._task_from_answer, 202, answer)


# --- pyghmi's client faked: connection, inventory, push, simple update ---


class FakeWebClient:
    """pyghmi's webclient, standing in for the BMC's HTTPS service."""

    def __init__(self, answer=({'@odata.id': TASK}, 202)):
        self.answer = answer
        self.posted = []
        self.timeouts = []
        self.uploaded = []  # the arguments of every upload
        self.upload_answer: tuple | Exception = (202, '{"@odata.id": "/redfish/v1/TaskService/Tasks/5"}')
        self.rspstatus = None

    def upload(self, url, filename, data=None, formname=None, otherfields=(), formwrap=True, excepterror=True):
        self.uploaded.append(
            {'url': url, 'filename': filename, 'formname': formname, 'formwrap': formwrap, 'excepterror': excepterror, 'otherfields': otherfields}
        )
        if isinstance(self.upload_answer, Exception):
            raise self.upload_answer
        self.rspstatus, body = self.upload_answer
        return body

    def dupe(self, timeout=None):
        self.timeouts.append(timeout)
        return self

    def grab_json_response_with_status(self, url, data=None, method=None):
        self.posted.append((url, data, method))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class FakeCommand:
    """pyghmi.redfish.command.Command, standing in for the BMC: resources by URL."""

    _fwinventory = '/redfish/v1/UpdateService/FirmwareInventory'
    _updateservice = '/redfish/v1/UpdateService'

    def __init__(self, resources=None, sysurl='/redfish/v1/Systems/1', power='on', sysinfo=None):
        self.resources = dict(SERVICE, **(resources or {}))
        self.sysurl = sysurl
        self.power = power
        self.sysinfo = sysinfo if sysinfo is not None else {'Model': 'R120h-1M', 'Manufacturer': 'Exup'}
        self.wc = FakeWebClient()
        self.power_set = []
        self.read = []
        if sysurl and sysurl not in self.resources:
            # the system resource as the BMC serves it: its power state is read from it, uncached
            self.resources[sysurl] = power if isinstance(power, Exception) else dict(self.sysinfo, PowerState=power.capitalize())
        if sysurl:  # pyghmi's sysinfo: the system as read at login, {} when that read failed
            self.sysinfo = self.resources[sysurl] if isinstance(self.resources[sysurl], dict) else {}

    def _do_web_request(self, url, payload=None, method=None, cache=True):
        assert cache is False
        self.read.append(url)
        answer = self.resources[url]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def get_power(self):
        if isinstance(self.power, Exception):
            raise self.power
        return {'powerstate': self.power}

    def set_power(self, state):
        self.power_set.append(state)
        if isinstance(self.power, Exception):
            raise self.power
        return {'powerstate': 'on'}

    def reset_bmc(self):
        raise pyghmi_exceptions.PyghmiException('connection reset by peer')


#: the service root and the UpdateService, whose links lead to the firmware inventory
SERVICE = {
    '/redfish/v1/': {'UpdateService': {'@odata.id': '/redfish/v1/UpdateService'}},
    '/redfish/v1/UpdateService': {'FirmwareInventory': {'@odata.id': '/redfish/v1/UpdateService/FirmwareInventory'}},
}

FIRMWARE = {
    '/redfish/v1/UpdateService/FirmwareInventory': {
        'Members': [
            {'@odata.id': '/redfish/v1/UpdateService/FirmwareInventory/BIOS'},
            {'@odata.id': '/redfish/v1/UpdateService/FirmwareInventory/BMC'},
            {'@odata.id': '/redfish/v1/UpdateService/FirmwareInventory/BIOS-Backup'},
            {'@odata.id': '/redfish/v1/UpdateService/FirmwareInventory/NIC'},
        ]
    },
    '/redfish/v1/UpdateService/FirmwareInventory/BIOS': {'Id': 'BIOS', 'Name': 'System BIOS', 'Version': '1.2', 'Updateable': True},
    '/redfish/v1/UpdateService/FirmwareInventory/BMC': {'Id': 'BMC', 'Name': 'Manager', 'Version': '2.05'},
    '/redfish/v1/UpdateService/FirmwareInventory/BIOS-Backup': {'Id': 'BIOS-Backup', 'Name': 'BIOS backup', 'Version': '1.0'},
    '/redfish/v1/UpdateService/FirmwareInventory/NIC': {'Id': 'NIC.1', 'Name': 'Ethernet', 'Version': '22.1', 'Updateable': True},
}


@pytest.fixture
def commands(monkeypatch):
    """Replaces pyghmi's Redfish Command: each construction records its arguments and returns ``commands.next``."""

    class Factory:
        def __init__(self):
            self.made = []
            self.next = FakeCommand(dict(FIRMWARE))

        def __call__(self, *args, **kwargs):
            self.made.append((args, kwargs))
            if isinstance(self.next, Exception):
                raise self.next  # pylint: disable=raising-non-exception  # an exception, checked just above
            return self.next

    factory = Factory()
    monkeypatch.setattr(bmc, 'ExupRedfishCommand', factory)
    return factory


def test_the_client_is_made_once_with_the_bmc_settings(commands, tls):
    client = bmc.RedfishBmc(config(system='1', ca_path=tls['ca_path']))
    assert client.command() is commands.next and client.command() is commands.next
    assert len(commands.made) == 1
    args, kwargs = commands.made[0]
    assert args == ('127.0.0.1', 'admin', 'secret')
    assert kwargs['sysurl'] == '/redfish/v1/Systems/1' and kwargs['port'] == 443
    assert kwargs['verifycallback'](tls['der']) is True
    client.command(fresh=True)
    assert len(commands.made) == 2


def test_the_client_uses_the_given_port_and_no_callback_without_ca(commands):
    bmc.RedfishBmc(config(port=8443)).command()
    assert commands.made[0][1]['port'] == 8443 and commands.made[0][1]['verifycallback'] is None


@pytest.mark.parametrize(
    'exc, code',
    [
        (pyghmi_exceptions.UnrecognizedCertificate('Unknown certificate', b'der'), 'certificate_untrusted'),
        (bmc.BmcError('the certificate of BMC 127.0.0.1 is not trusted', code='certificate_untrusted'), 'certificate_untrusted'),
        (pyghmi_exceptions.PyghmiException('Unable to authenticate'), 'bmc_auth_failed'),
        (pyghmi_exceptions.PyghmiException('HTTP 401 Unauthorized'), 'bmc_auth_failed'),
        (pyghmi_exceptions.PyghmiException('Access Denied'), 'bmc_auth_failed'),
        (pyghmi_exceptions.PyghmiException('Multi system manager, sysurl is required parameter'), 'argument_invalid'),
        (OSError('[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed'), 'certificate_untrusted'),
        (ConnectionRefusedError(111, 'Connection refused'), 'bmc_unreachable'),
        (KeyError('Systems'), 'bmc_unreachable'),
        (ValueError(), 'bmc_unreachable'),
    ],
)
def test_connection_errors_are_classified(commands, exc, code):
    commands.next = exc
    error = refused(code, bmc.RedfishBmc(config()).command)
    assert '127.0.0.1' in error.msg


def test_inventory_maps_members_to_modules(commands):
    client = bmc.RedfishBmc(config())
    inventory = client.inventory()
    assert {key: inventory[key] for key in ('model', 'manufacturer', 'power', 'system')} == {
        'model': 'R120h-1M',
        'manufacturer': 'Exup',
        'power': 'on',
        'system': '/redfish/v1/Systems/1',
    }
    assert [(item['id'], item['module'], item['version'], item['updateable']) for item in inventory['firmware']] == [
        ('BIOS', BIOS, '1.2', True),
        ('BMC', BMC, '2.05', False),
        ('BIOS-Backup', BIOS, '1.0', False),
        ('NIC.1', None, '22.1', True),
    ]
    assert inventory['firmware'][0]['url'] == '/redfish/v1/UpdateService/FirmwareInventory/BIOS'
    assert client.versions() == {BIOS: '1.2', BMC: '2.05'}
    assert len(commands.made) == 1  # one client, every read uncached (a new client would cost its own requests)


def test_inventory_of_one_system_among_several(commands):
    """A service with several systems lists the firmware of all of them: only the chosen system's and its manager's count."""
    resources = {
        '/redfish/v1/UpdateService/FirmwareInventory': {
            'Members': [{'@odata.id': '/redfish/v1/UpdateService/FirmwareInventory/%s' % item} for item in ('s1.BIOS', 's1.BMC', 's2.BIOS', 's2.BMC', 's2.NIC')]
        }
    }
    for system, bios, firmware in (('1', '1.0', '2.0'), ('2', '1.1', '2.1')):
        resources['/redfish/v1/UpdateService/FirmwareInventory/s%s.BIOS' % system] = {
            'Id': 's%s.BIOS' % system,
            'Name': 'BIOS',
            'Version': bios,
            'RelatedItem': [{'@odata.id': '/redfish/v1/Systems/%s' % system}],
        }
        resources['/redfish/v1/UpdateService/FirmwareInventory/s%s.BMC' % system] = {
            'Id': 's%s.BMC' % system,
            'Name': 'BMC',
            'Version': firmware,
            'RelatedItem': [{'@odata.id': '/redfish/v1/Managers/m%s' % system}],
        }
    resources['/redfish/v1/UpdateService/FirmwareInventory/s2.NIC'] = {
        'Id': 's2.NIC',
        'Name': 'NIC',
        'Version': '22.1',
        'RelatedItem': [{'@odata.id': '/redfish/v1/Systems/2/EthernetInterfaces/1'}],
    }
    commands.next = FakeCommand(
        resources, sysurl='/redfish/v1/Systems/2', sysinfo={'Model': 'R120h-1M', 'Links': {'ManagedBy': [{'@odata.id': '/redfish/v1/Managers/m2'}]}}
    )
    inventory = bmc.RedfishBmc(config(system='2')).inventory()
    assert [(item['id'], item['module'], item['version']) for item in inventory['firmware']] == [
        ('s2.BIOS', BIOS, '1.1'),
        ('s2.BMC', BMC, '2.1'),
        ('s2.NIC', None, '22.1'),
    ]


def test_inventory_without_a_system_has_no_power_state(commands):
    commands.next = FakeCommand(dict(FIRMWARE), sysurl=None, power=AssertionError('not asked'), sysinfo={})
    inventory = bmc.RedfishBmc(config()).inventory()
    assert (inventory['power'], inventory['model'], inventory['manufacturer']) == (None, '', '')


def test_inventory_errors_are_classified(commands):
    commands.next = FakeCommand(dict(FIRMWARE), power=pyghmi_exceptions.RedfishError('401 Unauthorized'))
    refused('bmc_auth_failed', bmc.RedfishBmc(config()).inventory)
    resources = dict(FIRMWARE)
    resources['/redfish/v1/UpdateService/FirmwareInventory/NIC'] = pyghmi_exceptions.RedfishError('Resource not found')
    commands.next = FakeCommand(resources)
    refused('bmc_unreachable', bmc.RedfishBmc(config()).inventory)
    commands.next = FakeCommand({'/redfish/v1/UpdateService/FirmwareInventory': pyghmi_exceptions.RedfishError('Unauthorized')})
    refused('bmc_auth_failed', bmc.RedfishBmc(config()).inventory)


def pushing(service):
    command = FakeCommand({'/redfish/v1/UpdateService': service})
    client = bmc.RedfishBmc(config(timeout=30))
    client._command = command
    return client, command


def test_push_multipart_sends_targets_and_apply_time():
    client, command = pushing({'MultipartHttpPushUri': '/redfish/v1/UpdateService/upload', 'HttpPushUri': '/old'})
    assert client.push('/pool/bios.zip', ['/fw/BIOS'], 'OnReset') == '/redfish/v1/TaskService/Tasks/5'
    assert command.wc.uploaded == [
        {
            'url': '/redfish/v1/UpdateService/upload',
            'filename': '/pool/bios.zip',
            'formname': 'UpdateFile',
            'formwrap': True,
            'excepterror': False,
            'otherfields': {'UpdateParameters': {'Targets': ['/fw/BIOS'], '@Redfish.OperationApplyTime': 'OnReset'}},
        }
    ]
    assert command.wc.timeouts == [300]


def test_push_falls_back_to_http_push_uri():
    client, command = pushing({'HttpPushUri': '/redfish/v1/UpdateService/push'})
    client.push('/pool/bmc.zip')
    assert command.wc.uploaded[0]['url'] == '/redfish/v1/UpdateService/push'
    assert command.wc.uploaded[0]['formwrap'] is False and command.wc.uploaded[0]['otherfields'] == {}


def test_push_without_a_push_uri_is_unsupported():
    client, command = pushing({'Actions': {}})
    refused('bmc_push_unsupported', client.push, '/pool/bmc.zip')
    assert command.wc.uploaded == []


def test_a_refused_push_is_a_rejection():
    client, command = pushing({'HttpPushUri': '/push'})
    command.wc.upload_answer = (413, b'{"error": {"message": "Payload too large"}}')
    error = refused('bmc_rejected', client.push, '/pool/bmc.zip')
    assert 'Payload too large' in error.msg and error.details == {'http_status': 413}


@pytest.mark.parametrize(
    'failure',
    [
        ConnectionResetError(104, 'Connection reset by peer'),
        http.client.RemoteDisconnected('Remote end closed connection without response'),
        http.client.IncompleteRead(b'', 10),
        TimeoutError('timed out'),
    ],
)
def test_an_upload_cut_by_the_bmc_is_unreachable_not_a_made_up_rejection(failure):
    client, command = pushing({'MultipartHttpPushUri': '/redfish/v1/UpdateService/upload'})
    command.wc.upload_answer = failure
    error = refused('bmc_unreachable', client.push, '/pool/bios.zip')
    assert error.msg.startswith('BMC 127.0.0.1 cannot be reached over Redfish: ') and 'HTTP 500' not in error.msg
    assert len(command.wc.uploaded) == 1  # sent once: an upload is never sent again by itself


SIMPLE = {'Actions': {'#UpdateService.SimpleUpdate': {'target': '/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate'}}}


def test_simple_update_posts_the_image_uri():
    client, command = pushing(SIMPLE)
    assert client.simple_update('https://repo.example/pool/bios.zip', ['/fw/BIOS'], 'Immediate') == TASK
    assert command.wc.posted == [
        (
            '/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate',
            {
                'ImageURI': 'https://repo.example/pool/bios.zip',
                'TransferProtocol': 'HTTPS',
                'Targets': ['/fw/BIOS'],
                '@Redfish.OperationApplyTime': 'Immediate',
            },
            'POST',
        )
    ]


def test_simple_update_without_targets_or_apply_time_sends_neither():
    client, command = pushing(SIMPLE)
    client.simple_update('http://repo.example/pool/bios.zip')
    assert command.wc.posted[0][1] == {'ImageURI': 'http://repo.example/pool/bios.zip', 'TransferProtocol': 'HTTP'}


def test_simple_update_without_the_action_is_unsupported():
    client, command = pushing({'Actions': {'#UpdateService.SimpleUpdate': {}}})
    refused('bmc_pull_unsupported', client.simple_update, 'http://repo.example/x.zip')
    assert command.wc.posted == []


def test_simple_update_errors_are_classified():
    client, command = pushing(SIMPLE)
    command.wc.answer = ConnectionResetError(104, 'Connection reset by peer')
    refused('bmc_unreachable', client.simple_update, 'http://repo.example/x.zip')
    command.wc.answer = (b'{"error": {"@Message.ExtendedInfo": [{"Message": "ImageURI unreachable"}]}}', 400)
    assert 'ImageURI unreachable' in refused('bmc_rejected', client.simple_update, 'http://repo.example/x.zip').msg


def test_request_errors_are_classified():
    client = bmc.RedfishBmc(config())
    client._command = FakeCommand({'/gone': pyghmi_exceptions.RedfishError('Resource not found'), '/auth': KeyError('credentials')})
    refused('bmc_unreachable', client.request, '/gone')
    refused('bmc_auth_failed', client.request, '/auth')


def test_resets():
    client = bmc.RedfishBmc(config())
    client._command = FakeCommand()
    assert client.reset_system() == {'powerstate': 'on'}
    assert client._command.power_set == ['boot']
    refused('bmc_unreachable', client.reset_bmc)
    client._command.power = pyghmi_exceptions.PyghmiException('connection timed out')
    refused('bmc_unreachable', client.reset_system)


# --- IPMI ---


class FakeIpmiCommand:
    """pyghmi.ipmi.command.Command, standing in for an IPMI BMC."""

    def __init__(self, data=(0x20, 0x81, 0x82, 0x10, 0x02), power='off'):
        self.data = data
        self.power = power
        self.raw = []

    def xraw_command(self, netfn, command):
        self.raw.append((netfn, command))
        if isinstance(self.data, Exception):
            raise self.data
        return {'data': self.data}

    def get_power(self):
        return {'powerstate': self.power}

    def set_power(self, state):
        if isinstance(self.data, Exception):
            raise self.data
        self.raw.append(('power', state))
        return {'powerstate': 'on'}


def test_ipmi_power_cycle():
    client = bmc.IpmiBmc(config(protocol='ipmi'))
    client._command = FakeIpmiCommand()
    client.reset_system()
    assert client._command.raw == [('power', 'boot')]
    client._command = FakeIpmiCommand(data=pyghmi_exceptions.IpmiException('timeout'))
    refused('bmc_unreachable', client.reset_system)


def test_ipmi_inventory_reads_the_revision_and_power():
    client = bmc.IpmiBmc(config(protocol='ipmi'))
    client._command = FakeIpmiCommand()
    inventory = client.inventory()
    assert inventory['power'] == 'off' and inventory['system'] is None
    assert inventory['firmware'] == [{'name': 'BMC', 'id': 'bmc', 'version': '2.10', 'module': BMC, 'updateable': False, 'url': None}]
    assert client._command.raw == [(6, 1)]
    assert client.versions() == {BMC: '2.10'}


def test_ipmi_errors():
    client = bmc.IpmiBmc(config(protocol='ipmi'))
    client._command = FakeIpmiCommand(data=pyghmi_exceptions.IpmiException('timeout'))
    refused('bmc_unreachable', client.inventory)
    client._command = FakeIpmiCommand(data=b'\x20')
    refused('bmc_protocol', client.inventory)


@pytest.mark.parametrize(
    'exc, code',
    [
        (pyghmi_exceptions.IpmiException('Incorrect password provided'), 'bmc_auth_failed'),
        (pyghmi_exceptions.IpmiException('Unauthorized name'), 'bmc_auth_failed'),
        (pyghmi_exceptions.IpmiException('Session No Longer Connected'), 'bmc_unreachable'),
        (OSError(101, 'Network is unreachable'), 'bmc_unreachable'),
    ],
)
def test_ipmi_connection_errors(monkeypatch, exc, code):
    from pyghmi.ipmi import command as ipmi_command

    def fail(**kwargs):
        raise exc

    monkeypatch.setattr(ipmi_command, 'Command', fail)
    refused(code, bmc.IpmiBmc(config(protocol='ipmi')).command)


def test_ipmi_client_is_made_once(monkeypatch):
    from pyghmi.ipmi import command as ipmi_command

    made = []

    def make(**kwargs):
        made.append(kwargs)
        return FakeIpmiCommand()

    monkeypatch.setattr(ipmi_command, 'Command', make)
    client = bmc.IpmiBmc(config(protocol='ipmi'))
    assert client.command() is client.command()
    assert made == [{'bmc': '127.0.0.1', 'userid': 'admin', 'password': 'secret', 'port': 623}]


def test_ipmi_refuses_updates():
    error = refused('ipmi_update_unsupported', bmc.IpmiBmc(config(protocol='ipmi')).refuse_update)
    assert 'redfish' in error.msg


# --- run_plan ---


class FakeBmc:
    """Stands in for a Redfish BMC (the methods run_plan calls); the system tests use real emulators.

    ``outcomes`` maps a package id to the task follow() returns, or to a BmcError that push/simple_update
    (key 'send') or follow raise.
    """

    def __init__(self, outcomes=None, firmware=None):
        self.outcomes = outcomes or {}
        self.firmware = (
            firmware
            if firmware is not None
            else [
                {'module': None, 'url': '/fw/NIC'},
                {'module': BIOS, 'url': None},
                {'module': BIOS, 'url': '/fw/BIOS'},
                {'module': BIOS, 'url': '/fw/BIOS-Backup'},
                {'module': BMC, 'url': '/fw/BMC'},
            ]
        )
        self.calls = []
        self.tasks = {}

    def inventory(self):
        self.calls.append(('inventory',))
        return {'firmware': self.firmware}

    def _send(self, how, source, targets, apply_time):
        self.calls.append((how, source, list(targets), apply_time))
        package_id = source.rsplit('/', 1)[-1]
        outcome = self.outcomes.get(package_id, {})
        if isinstance(outcome.get('send'), bmc.BmcError):
            raise outcome['send']
        task_url = '/redfish/v1/TaskService/Tasks/%s' % package_id
        self.tasks[task_url] = outcome
        return task_url

    def push(self, path, targets=(), apply_time=None):
        return self._send('push', path, targets, apply_time)

    def simple_update(self, image_uri, targets=(), apply_time=None):
        return self._send('simple_update', image_uri, targets, apply_time)

    def follow(self, task_url, timeout, poll_interval=2.0, progress=None):
        self.calls.append(('follow', task_url, timeout, poll_interval))
        outcome = self.tasks[task_url]
        if isinstance(outcome.get('follow'), bmc.BmcError):
            raise outcome['follow']
        progress('Running', 50)
        return outcome.get('task', {'TaskState': 'Completed', 'PercentComplete': 100, 'Messages': []})


def planned(package_id, module=BIOS, reboot=False):
    return plan.PlanItem(
        package_id=package_id,
        module_id=module,
        action='install',
        from_version='1.0',
        to_version='2.0',
        reboot_required=reboot,
        release_date='2024-01-01',
        command='',
    ).as_dict()


def sources(*package_ids, base='/pool/'):
    return {package_id: base + package_id for package_id in package_ids}


def test_run_plan_runs_the_items_in_order_through_push():
    fake = FakeBmc()
    items = [planned('bmc_2', BMC), planned('bios_2', BIOS)]
    results = bmc.run_plan(fake, items, sources('bmc_2', 'bios_2'), task_timeout=99, poll_interval=0.5)
    assert fake.calls == [
        ('inventory',),
        ('push', '/pool/bmc_2', ['/fw/BMC'], 'OnReset'),
        ('follow', '/redfish/v1/TaskService/Tasks/bmc_2', 99, 0.5),
        ('push', '/pool/bios_2', ['/fw/BIOS'], 'OnReset'),
        ('follow', '/redfish/v1/TaskService/Tasks/bios_2', 99, 0.5),
    ]
    assert [(result['package_id'], result['status'], result['cause'], result['error'], result['reset_required']) for result in results] == [
        ('bmc_2', 'succeeded', None, None, False),
        ('bios_2', 'succeeded', None, None, False),
    ]
    assert results[0]['task'] == '/redfish/v1/TaskService/Tasks/bmc_2' and results[0]['messages'] == ''
    assert {key: results[1][key] for key in items[1]} == items[1]  # the plan item's fields are kept
    assert 'status' not in items[1]  # and the plan items are left alone


def test_run_plan_through_simple_update_uses_the_image_uris():
    fake = FakeBmc()
    image_uris = sources('bios_2', base='https://repo.example/pool/')
    results = bmc.run_plan(fake, [planned('bios_2')], image_uris, method='simple_update', apply_time='Immediate')
    assert fake.calls[1] == ('simple_update', 'https://repo.example/pool/bios_2', ['/fw/BIOS'], 'Immediate')
    assert results[0]['status'] == 'succeeded'


def test_run_plan_without_a_component_url_sends_no_target():
    fake = FakeBmc(firmware=[{'module': BIOS, 'url': '/fw/BIOS'}])
    bmc.run_plan(fake, [planned('bmc_2', BMC)], sources('bmc_2'))
    assert fake.calls[1] == ('push', '/pool/bmc_2', [], 'OnReset')


def test_run_plan_without_items_does_nothing():
    fake = FakeBmc()
    assert bmc.run_plan(fake, [], {}) == []
    assert fake.calls == []


@pytest.mark.parametrize(
    'reboot, messages, reset_required',
    [
        (True, [], True),
        (False, [{'MessageId': 'Base.1.0.ResetRequired', 'Message': 'A reset is required.'}], True),
        (True, [{'MessageId': 'Base.1.0.ResetRequired'}], True),
        (False, [{'MessageId': 'Update.1.0.UpdateSuccessful', 'Message': 'Done.'}], False),
    ],
)
def test_run_plan_reset_required_from_the_item_or_the_task(reboot, messages, reset_required):
    fake = FakeBmc({'bios_2': {'task': {'TaskState': 'Completed', 'Messages': messages}}})
    result = bmc.run_plan(fake, [planned('bios_2', reboot=reboot)], sources('bios_2'))[0]
    assert result['status'] == 'succeeded' and result['reset_required'] is reset_required
    assert result['messages'] == bmc.redfish_message({'Messages': messages})


@pytest.mark.parametrize(
    'stage, code, blocks',
    [
        ('send', 'bmc_rejected', False),
        ('send', 'bmc_push_unsupported', False),
        ('follow', 'bmc_unreachable', False),
        ('follow', 'bmc_task_failed', True),
        ('follow', 'bmc_task_timeout', True),
    ],
)
def test_a_failure_cancels_the_rest(stage, code, blocks):
    error = bmc.BmcError('the BMC said no', code=code)
    fake = FakeBmc({'bios_2': {stage: error}})
    items = [planned('bmc_2', BMC), planned('bios_2', BIOS, reboot=True), planned('bmc_3', BMC), planned('bios_3', BIOS)]
    results = bmc.run_plan(fake, items, sources('bmc_2', 'bios_2', 'bmc_3', 'bios_3'))
    assert [(result['package_id'], result['status']) for result in results] == [
        ('bmc_2', 'succeeded'),
        ('bios_2', 'failed'),
        ('bmc_3', 'cancelled'),
        ('bios_3', 'cancelled'),
    ]
    failed = results[1]
    assert (failed['cause'], failed['error'], failed['blocks'], failed['reset_required']) == ('the BMC said no', code, blocks, False)
    for cancelled in results[2:]:
        assert (cancelled['cause'], cancelled['error'], cancelled['reset_required']) == (bmc.CAUSE_EARLIER, None, False)
        assert 'blocks' not in cancelled
    sent = [call[1] for call in fake.calls if call[0] == 'push']
    assert sent == ['/pool/bmc_2', '/pool/bios_2']


def test_run_plan_survives_a_task_with_malformed_messages():
    fake = FakeBmc({'bios_2': {'task': {'TaskState': 'Completed', 'Messages': ['done', {'Message': 'Reset required.'}]}}})
    result = bmc.run_plan(fake, [planned('bios_2')], sources('bios_2'))[0]
    assert (result['status'], result['reset_required'], result['messages']) == ('succeeded', True, 'Reset required.')


def test_blocking_errors_are_those_that_may_leave_half_written_firmware():
    assert set(bmc.BLOCKING_ERRORS) == {'bmc_task_failed', 'bmc_task_timeout'}


def test_run_plan_reports_progress_per_item():
    seen = []
    fake = FakeBmc({'bios_2': {'follow': bmc.BmcError('flash failed', code='bmc_task_failed')}})
    items = [planned('bmc_2', BMC), planned('bios_2'), planned('bios_3')]
    bmc.run_plan(fake, items, sources('bmc_2', 'bios_2', 'bios_3'), progress=lambda item, state, percent: seen.append((item['package_id'], state, percent)))
    assert seen == [('bmc_2', 'sending', None), ('bmc_2', 'Running', 50), ('bios_2', 'sending', None)]


def test_run_plan_inventory_errors_propagate():
    class Unreachable(FakeBmc):
        def inventory(self):
            raise bmc.BmcError('BMC 127.0.0.1 cannot be reached over Redfish', code='bmc_unreachable')

    refused('bmc_unreachable', bmc.run_plan, Unreachable(), [planned('bios_2')], sources('bios_2'))


def test_an_accepted_push_without_a_task_is_a_protocol_error():
    client = bmc.RedfishBmc(config())
    with pytest.raises(bmc.BmcError) as info:
        client._task_from_answer(202, {'@odata.id': '/redfish/v1/UpdateService'})
    assert info.value.code == 'bmc_protocol' and '/redfish/v1/UpdateService' in info.value.msg
    assert client._task_from_answer(202, {'TaskMonitor': '/redfish/v1/TaskService/TaskMonitors/7'}) == '/redfish/v1/TaskService/TaskMonitors/7'


# --- what one run reads, and the TLS context (issue 10) ---


def test_a_run_reads_each_resource_once_and_the_firmware_again_for_the_versions(commands):
    client = bmc.RedfishBmc(config())
    inventory = client.inventory()
    client.update_service()
    client.inventory()
    read = commands.next.read
    members = ['/redfish/v1/UpdateService/FirmwareInventory/%s' % name for name in ('BIOS', 'BMC', 'BIOS-Backup', 'NIC')]
    assert read == ['/redfish/v1/', '/redfish/v1/UpdateService', '/redfish/v1/UpdateService/FirmwareInventory'] + members  # the system: from login
    assert inventory['power'] == 'on'
    commands.next.resources['/redfish/v1/UpdateService/FirmwareInventory/BIOS'] = {'Id': 'BIOS', 'Name': 'System BIOS', 'Version': '1.3'}
    del read[:]
    assert client.versions() == {BIOS: '1.3', BMC: '2.05'}
    assert read == ['/redfish/v1/UpdateService/FirmwareInventory'] + members[:3]  # the NIC is no module of exup's: not read again


def test_the_service_root_pyghmi_read_at_login_is_not_read_again(commands):
    commands.next.wc.root = {'UpdateService': {'@odata.id': '/redfish/v1/UpdateService'}}
    bmc.RedfishBmc(config()).update_service()
    assert commands.next.read == ['/redfish/v1/UpdateService']


def test_a_service_without_an_update_service_is_refused(commands):
    commands.next.resources['/redfish/v1/'] = {'Systems': {'@odata.id': '/redfish/v1/Systems'}}
    error = refused('bmc_unreachable', bmc.RedfishBmc(config()).inventory)
    assert 'UpdateService' in error.msg


def test_one_tls_context_per_process_and_none_loads_a_ca_when_exup_verifies():
    checked_by_exup = bmc.tls_context(True)
    assert bmc.tls_context(True) is checked_by_exup
    assert checked_by_exup.verify_mode == bmc.ssl.CERT_NONE and not checked_by_exup.check_hostname
    assert checked_by_exup.cert_store_stats()['x509_ca'] == 0  # exup's verifier checks the chain against ca_path
    standard = bmc.tls_context(False)
    assert bmc.tls_context(False) is standard and standard is not checked_by_exup
    assert standard.verify_mode == bmc.ssl.CERT_REQUIRED and standard.check_hostname


def test_pyghmis_client_gets_the_kept_connection():
    command = bmc.ExupRedfishCommand.__new__(bmc.ExupRedfishCommand)
    plain = bmc.webclient.SecureHTTPConnection('127.0.0.1', 443, verifycallback=lambda der: True)
    plain.set_header('Accept', 'application/json')
    command.wc = plain  # what pyghmi's __init__ does first
    assert isinstance(command.wc, bmc.KeptConnection) and command.wc.dupe() is command.wc
    assert command.wc.stdheaders == {'Accept': 'application/json'} and command.wc._certverify is plain._certverify


def test_an_expired_certificate_of_the_right_ca_and_name_is_untrusted(tmp_path):
    """Validity is checked too (the leaf expired yesterday), with the chain and the name right."""
    import datetime
    import ipaddress

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, 'exup test CA')])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(not_after):
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, '127.0.0.1')]))
            .issuer_name(ca_name)
            .public_key(leaf_key.public_key())
            .serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=10))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )

    ca_path = tmp_path / 'ca.pem'
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    verify = bmc.certificate_verifier(config(ca_path=str(ca_path)))
    assert verify(leaf(now + datetime.timedelta(days=10))) is True  # the same leaf, still valid, passes
    error = refused('certificate_untrusted', verify, leaf(now - datetime.timedelta(days=1)))
    assert 'not trusted' in error.msg


# --- KeptConnection on a real loopback HTTPS server ---


class _BmcHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET and POST with {"n": <request number>}; the server's settings make it close connections."""

    protocol_version = 'HTTP/1.1'  # connections stay open between requests, as BMCs keep them
    server: _KeepingServer

    def do_GET(self):  # pylint: disable=invalid-name  # name fixed by http.server
        self._answer()

    def do_POST(self):  # pylint: disable=invalid-name  # name fixed by http.server
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        self._answer()

    def _answer(self):
        number = self.server.saw(self.command, self.path, self.client_address)
        if number in self.server.drop:  # the BMC closed the idle connection just as the request came
            self._close('fin')
            return
        time.sleep(self.server.delay.get(number, 0))
        body = json.dumps({'n': number}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if not self.server.keep_alive or number in self.server.close_after:
            self._close(self.server.close_after.get(number, 'fin'))

    def _close(self, how):
        """Close the connection: 'fin' without TLS close_notify (a BMC that just drops it), 'notify' with it."""
        if how == 'notify':
            self.connection.settimeout(0)  # sends close_notify, does not wait for the client's
            with contextlib.suppress(OSError):
                self.connection.unwrap()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True
        self.server.closed.set()

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin  # keep test output clean
        pass


class _KeepingServer(http.server.ThreadingHTTPServer):
    """A BMC's HTTPS service on 127.0.0.1 that keeps connections open; ``drop``, ``close_after``, ``keep_alive``
    and ``delay`` make it close them or answer late. ``seen``: (method, path, connection number) per request."""

    daemon_threads = True

    def __init__(self, files):
        super().__init__(('127.0.0.1', 0), _BmcHandler)
        self.context = self.tls_context(files)
        self.seen = []
        self.connections = {}  # client address -> connection number (1, 2, ...)
        self.drop = set()  # request numbers read and left unanswered: the connection is closed instead
        self.close_after = {}  # request number -> 'fin' or 'notify': answered, then the connection closed
        self.keep_alive = True  # False: every answer closes its connection
        self.delay = {}  # request number -> seconds before its answer
        self.closed = threading.Event()  # set when the server has closed a connection
        self.lock = threading.Lock()

    @staticmethod
    def tls_context(files):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(files.cert_path), str(files.key_path))
        return context

    def get_request(self):
        plain, address = super().get_request()
        try:
            wrapped = self.context.wrap_socket(plain, server_side=True)  # one client at a time: the accept loop may wait
        except BaseException:
            plain.close()
            raise
        with self.lock:
            self.connections[address] = len(self.connections) + 1
        return wrapped, address

    def saw(self, method, path, address):
        with self.lock:
            self.seen.append((method, path, self.connections[address]))
            return len(self.seen)

    def handle_error(self, request, client_address):
        pass  # a client that went away mid-answer (a timed-out exchange)

    @property
    def port(self):
        return self.server_address[1]


@pytest.fixture(scope='module')
def bmc_tls(tmp_path_factory):
    """A CA and the BMC's certificate for 127.0.0.1 (files), and another CA's certificate for the same address."""
    make_tls_files = _tls().make_tls_files
    own = make_tls_files(tmp_path_factory.mktemp('bmc-ca'), hostname='127.0.0.1')
    return own, make_tls_files(tmp_path_factory.mktemp('bmc-other-ca'), hostname='127.0.0.1')


@pytest.fixture
def keeping(bmc_tls):
    running = _KeepingServer(bmc_tls[0])
    thread = threading.Thread(target=running.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


class _CountingVerifier:
    """exup's verifier against the BMC's CA (certificate_verifier), counting the certificates it was asked about."""

    def __init__(self, files):
        self.verify = bmc.certificate_verifier(config(ca_path=str(files.ca_path)))
        self.calls = 0

    def __call__(self, certificate):
        self.calls += 1
        return self.verify(certificate)


def kept(server, files, timeout=5):
    """A KeptConnection to ``server`` as RedfishBmc makes one (pyghmi's fresh connection adopted), and its verifier."""
    verifier = _CountingVerifier(files)
    plain = bmc.webclient.SecureHTTPConnection('127.0.0.1', server.port, verifycallback=verifier, timeout=timeout)
    return bmc.KeptConnection.adopt(plain), verifier


def get(connection, path='/redfish/v1/'):
    """A GET as pyghmi makes them (RedfishBmc.request): through a dupe of the connection; returns (body, status)."""
    return connection.dupe().grab_json_response_with_status(path)


def resends(monkeypatch, connection):
    """The stale-connection errors after which ``connection`` considered sending its request again, as they come."""
    raised = []
    send_again = connection._send_again

    def spy(stale):
        raised.append(type(stale))
        return send_again(stale)

    monkeypatch.setattr(connection, '_send_again', spy)
    return raised


def wait_until_closed_by_the_server(connection):
    """Until the server's FIN (or close_notify) of the idle connection reached the client's socket."""
    readable, _writable, _failed = select.select([connection.sock], [], [], 2)
    assert readable, 'the server did not close the connection'


def wait_until_reset(sock, seconds=5.0):
    """Until the peer's reset reached the socket: TCP_INFO's state is TCP_CLOSE (7). Read without touching SO_ERROR,
    which the next send must still find (a fixed sleep here was a race on a loaded machine)."""
    deadline = time.monotonic() + seconds
    while sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != 7:
        assert time.monotonic() < deadline, 'no reset from the closed peer'
        time.sleep(0.002)


def test_a_kept_connection_carries_the_requests_and_is_verified_once(keeping, bmc_tls):
    connection, verifier = kept(keeping, bmc_tls[0])
    assert [get(connection) for _turn in range(3)] == [({'n': 1}, 200), ({'n': 2}, 200), ({'n': 3}, 200)]
    assert (connection.opened, verifier.calls) == (1, 1)
    assert [number for _method, _path, number in keeping.seen] == [1, 1, 1]


def test_without_keep_alive_each_request_opens_a_connection_and_verifies_it(keeping, bmc_tls):
    keeping.keep_alive = False  # every answer closes its connection (as werkzeug does)
    connection, verifier = kept(keeping, bmc_tls[0])
    for turn in range(3):
        assert get(connection) == ({'n': turn + 1}, 200)
        wait_until_closed_by_the_server(connection)
    assert (connection.opened, verifier.calls) == (3, 3)
    assert [number for _method, _path, number in keeping.seen] == [1, 2, 3]


@pytest.mark.parametrize('how', ['fin', 'notify'])
def test_a_connection_the_bmc_closed_while_idle_is_replaced_before_the_request(keeping, bmc_tls, monkeypatch, how):
    keeping.close_after = {1: how}
    connection, verifier = kept(keeping, bmc_tls[0])
    raised = resends(monkeypatch, connection)
    assert get(connection) == ({'n': 1}, 200)
    wait_until_closed_by_the_server(connection)
    assert get(connection) == ({'n': 2}, 200)
    assert (connection.opened, verifier.calls, raised) == (2, 2, [])  # replaced, not tried and sent again
    assert keeping.seen == [('GET', '/redfish/v1/', 1), ('GET', '/redfish/v1/', 2)]  # nothing sent twice


def test_a_get_the_bmc_dropped_on_a_kept_connection_is_sent_again_once(keeping, bmc_tls):
    keeping.drop = {2}  # read, then the connection closed without an answer
    connection, verifier = kept(keeping, bmc_tls[0])
    assert get(connection) == ({'n': 1}, 200)
    assert get(connection, '/redfish/v1/Systems') == ({'n': 3}, 200)
    assert (connection.opened, verifier.calls) == (2, 2)  # the new connection verified before the request went again
    assert keeping.seen == [('GET', '/redfish/v1/', 1), ('GET', '/redfish/v1/Systems', 1), ('GET', '/redfish/v1/Systems', 2)]


def test_a_get_is_sent_again_only_once(keeping, bmc_tls):
    keeping.drop = {2, 3}
    connection, _verifier = kept(keeping, bmc_tls[0])
    get(connection)
    with pytest.raises(bmc.http.client.RemoteDisconnected):
        connection.request('GET', '/redfish/v1/Systems')
        connection.getresponse()
    assert [(path, number) for _method, path, number in keeping.seen] == [('/redfish/v1/', 1), ('/redfish/v1/Systems', 1), ('/redfish/v1/Systems', 2)]
    assert connection.sock is None  # the next request opens a new connection


def test_a_request_dropped_on_a_new_connection_is_not_sent_again(keeping, bmc_tls):
    """Only a kept connection goes stale: a new one closed without an answer is the BMC's refusal."""
    keeping.drop = {1}
    connection, _verifier = kept(keeping, bmc_tls[0])
    with pytest.raises(bmc.http.client.RemoteDisconnected):
        connection.request('GET', '/redfish/v1/')
        connection.getresponse()
    assert keeping.seen == [('GET', '/redfish/v1/', 1)] and connection.opened == 1


def test_a_post_the_bmc_dropped_on_a_kept_connection_is_not_sent_again(keeping, bmc_tls):
    keeping.drop = {2}
    connection, _verifier = kept(keeping, bmc_tls[0])
    get(connection)
    with pytest.raises(ConnectionError) as caught:
        connection.dupe().grab_json_response_with_status('/redfish/v1/UpdateService/Actions/SimpleUpdate', {'ImageURI': 'http://x/p.bin'})
    assert 'not sent again' in str(caught.value) and 'POST /redfish/v1/UpdateService/Actions/SimpleUpdate' in str(caught.value)
    assert keeping.seen == [('GET', '/redfish/v1/', 1), ('POST', '/redfish/v1/UpdateService/Actions/SimpleUpdate', 1)]  # once
    assert connection.opened == 1 and connection.sock is None


def test_a_simple_update_the_bmc_dropped_is_unreachable_and_not_sent_again(keeping, bmc_tls):
    """Not "rejected (HTTP 500)", as pyghmi reads a closed connection: the BMC may have the request, exup cannot tell."""
    keeping.drop = {2}
    connection, _verifier = kept(keeping, bmc_tls[0])
    get(connection)
    client = bmc.RedfishBmc(config())
    client._command = types.SimpleNamespace(wc=connection)  # logged in; what it read then:
    client._read = {
        bmc.SERVICE_ROOT: {'UpdateService': {'@odata.id': '/redfish/v1/UpdateService'}},
        '/redfish/v1/UpdateService': {'Actions': {'#UpdateService.SimpleUpdate': {'target': '/redfish/v1/UpdateService/Actions/SimpleUpdate'}}},
    }
    error = refused('bmc_unreachable', client.simple_update, 'http://repo.example/p.bin')
    assert error.msg.startswith(
        'BMC 127.0.0.1 cannot be reached over Redfish: the BMC closed the kept connection during POST /redfish/v1/UpdateService/Actions/SimpleUpdate ('
    )
    assert error.msg.endswith('); not sent again: it may have reached the BMC')
    assert keeping.seen == [('GET', '/redfish/v1/', 1), ('POST', '/redfish/v1/UpdateService/Actions/SimpleUpdate', 1)]


@pytest.mark.parametrize(('how', 'stale'), [('fin', ssl.SSLEOFError), ('notify', ssl.SSLZeroReturnError)])
@pytest.mark.parametrize('method', ['GET', 'POST'])
def test_a_send_on_a_connection_the_bmc_closed_meanwhile(keeping, bmc_tls, monkeypatch, how, stale, method):
    """The BMC closes the idle connection between the client's check of it and its send: a race, made certain here
    (the client's TLS layer has read the close, and the check is told the socket is usable). Sending raises
    ``stale``: a GET is sent again on a new connection, a POST is not."""
    keeping.close_after = {1: how}
    connection, verifier = kept(keeping, bmc_tls[0])
    get(connection)
    wait_until_closed_by_the_server(connection)
    assert keeping.closed.wait(2)  # its close_notify and its FIN both sent
    assert connection.sock.recv(1) == b''  # the end of the connection, read
    if how == 'notify':  # after a close_notify one more write goes out; the closed peer's reset makes the next one fail
        connection.sock.sendall(b'\r\n')
        wait_until_reset(connection.sock)
    monkeypatch.setattr(connection, '_usable', lambda: True)
    raised = resends(monkeypatch, connection)
    if method == 'GET':
        assert get(connection, '/redfish/v1/Systems') == ({'n': 2}, 200)
        assert (connection.opened, verifier.calls) == (2, 2)
        assert keeping.seen == [('GET', '/redfish/v1/', 1), ('GET', '/redfish/v1/Systems', 2)]
    else:
        with pytest.raises(ConnectionError, match='not sent again'):
            connection.dupe().grab_json_response_with_status('/redfish/v1/x', {'a': 1})
        assert keeping.seen == [('GET', '/redfish/v1/', 1)] and connection.opened == 1
    assert raised == [stale]


def test_a_certificate_changed_on_the_reconnect_is_refused_before_the_request_is_sent_again(keeping, bmc_tls):
    keeping.drop = {2}
    connection, verifier = kept(keeping, bmc_tls[0])
    get(connection)
    keeping.context = keeping.tls_context(bmc_tls[1])  # the next connection shows another CA's certificate
    error = refused('certificate_untrusted', get, connection, '/redfish/v1/Systems')
    assert 'the certificate of BMC 127.0.0.1 is not trusted' in error.msg
    assert (connection.opened, verifier.calls) == (2, 2) and connection.sock is None
    assert [number for _method, _path, number in keeping.seen] == [1, 1]  # nothing on the second connection


def test_a_timeout_given_to_dupe_holds_for_that_one_exchange(keeping, bmc_tls, tmp_path):
    keeping.delay = {1: 0.3, 2: 0.3, 3: 0.3}
    connection, _verifier = kept(keeping, bmc_tls[0], timeout=0.1)
    with pytest.raises(TimeoutError):  # the connection's own timeout is too short for the slow answer
        get(connection)
    assert connection.dupe(timeout=5).grab_json_response_with_status('/redfish/v1/') == ({'n': 2}, 200)
    image = tmp_path / 'image.bin'
    image.write_bytes(b'firmware')
    sender = connection.dupe(timeout=5)
    body = sender.upload('/redfish/v1/UpdateService/upload', str(image), formwrap=False, excepterror=False)  # as RedfishBmc.push sends an image
    assert (sender.rspstatus, json.loads(body)) == (200, {'n': 3})
    assert get(connection) == ({'n': 4}, 200)
    assert connection.sock.gettimeout() == 0.1  # the next exchange: the connection's own timeout again


def test_a_get_sent_again_keeps_the_timeout_of_its_exchange(keeping, bmc_tls):
    keeping.drop, keeping.delay = {2}, {3: 0.3}
    connection, _verifier = kept(keeping, bmc_tls[0], timeout=0.1)
    get(connection)
    assert connection.dupe(timeout=5).grab_json_response_with_status('/redfish/v1/Systems') == ({'n': 3}, 200)
    assert connection.opened == 2


# --- the BMC's task queue for the rollout's pre-flight gate (tasks()) ---

TASKS = '/redfish/v1/TaskService/Tasks'


def task_service(states, listing=None):
    """The resources of a BMC's task service with one task per state (a state None: the task has no TaskState)."""
    resources = {
        '/redfish/v1/': dict(SERVICE['/redfish/v1/'], TaskService={'@odata.id': '/redfish/v1/TaskService'}),
        '/redfish/v1/TaskService': {'Tasks': {'@odata.id': TASKS}},
        TASKS: listing if listing is not None else {'Members': [{'@odata.id': '%s/%d' % (TASKS, number)} for number in range(len(states))]},
    }
    for number, state in enumerate(states):
        resources['%s/%d' % (TASKS, number)] = {'TaskState': state, 'PercentComplete': 50} if state else {}
    return resources


class TimedCommand(FakeCommand):
    """A BMC whose every answer takes ``seconds`` of the test's clock."""

    def __init__(self, resources, clock, seconds):
        super().__init__(resources)
        self.clock, self.seconds = clock, seconds

    def _do_web_request(self, url, payload=None, method=None, cache=True):
        self.clock.now += self.seconds
        return super()._do_web_request(url, payload, method, cache)


def tasks_of(resources, clock=None, seconds=0.0, **fields):
    clock = clock or FakeClock()
    client = bmc.RedfishBmc(config(**fields), clock=clock, sleep=clock.sleep)
    client._command = TimedCommand(resources, clock, seconds)
    return client


def test_tasks_reads_every_member_in_any_order():
    # newest first, more than the 32 read before: the running task is the first member
    client = tasks_of(task_service(['Running'] + ['Completed'] * 39))
    listed = client.tasks()
    assert len(listed) == 40 and listed[0] == {'url': TASKS + '/0', 'state': 'Running', 'percent': 50}
    assert client._command.read.count(TASKS + '/0') == 1


def test_tasks_without_a_state_are_unknown():
    listed = tasks_of(task_service([None, 'Completed'])).tasks()
    assert [task['state'] for task in listed] == ['Unknown', 'Completed'] and listed[0]['percent'] is None
    listing = {'Members': [{'@odata.id': 7}, 'text', {}]}
    assert [task['state'] for task in tasks_of(task_service([], listing)).tasks()] == ['Unknown'] * 3


@pytest.mark.parametrize(
    'listing',
    [
        {'Members': [{'@odata.id': '%s/%d' % (TASKS, number)} for number in range(bmc.MAX_LISTED_TASKS + 1)]},
        {'Members': [{'@odata.id': TASKS + '/0'}], 'Members@odata.nextLink': TASKS + '?$skip=1'},  # a paged list
    ],
)
def test_more_tasks_than_read_stand_for_an_unknown_queue(listing):
    client = tasks_of(task_service(['Completed'] * (bmc.MAX_LISTED_TASKS + 1), listing))
    assert client.tasks() == [{'url': TASKS, 'state': 'Unknown', 'percent': None}]
    assert not any(url.startswith(TASKS + '/') for url in client._command.read)  # no task read in vain


def test_the_listing_has_a_deadline():
    clock = FakeClock()
    listed = tasks_of(task_service(['Completed'] * 10), clock=clock, seconds=10, timeout=40).tasks()
    # the service root, TaskService, Tasks and the first task take the 40 s: the other tasks are not read
    assert listed == [{'url': TASKS + '/0', 'state': 'Completed', 'percent': 50}, {'url': TASKS, 'state': 'Unknown', 'percent': None}]
    assert clock.now == 40


def test_a_bmc_without_a_task_service_lists_none():
    assert tasks_of({}).tasks() == []
    assert tasks_of({'/redfish/v1/': {'TaskService': 'yes'}}).tasks() == []


@pytest.mark.parametrize(
    'resources',
    [
        task_service([], {'Members': {'@odata.id': TASKS + '/0'}}),
        task_service([], {'Members': 'none'}),
        task_service([], ['not', 'an', 'object']),
        dict(task_service(['Running']), **{TASKS + '/0': 'Running'}),
        {'/redfish/v1/': ['TaskService']},
    ],
)
def test_hostile_task_answers_are_a_protocol_error(resources):
    assert 'BMC 127.0.0.1' in refused('bmc_protocol', tasks_of(resources).tasks).msg
