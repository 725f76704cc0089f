"""Tests of the fake IPMI BMC (tests/services/ipmi_bmc.py) against two independent clients.

pyghmi's client (pyghmi.ipmi.command.Command, in this process) and Debian's ipmitool (-I lanplus, a
subprocess) must both log in, read the firmware revision and see the same power state. pyghmi caches
sessions per process (keyed by host, port, user and password): every test has its own BMC on its own
port, and its clients are logged out and dropped from pyghmi's tables (forget_pyghmi_sessions), so no
session outlives its test.
"""

import contextlib
import socket
import subprocess
import time

import pytest
from pyghmi.exceptions import IpmiException  # pylint: disable=import-error  # pyghmi is a test tool installed in .venv
from pyghmi.ipmi.command import Command  # pylint: disable=import-error

from ansible_collections.exup.fleet.tests.services import ipmi_bmc
from ansible_collections.exup.fleet.tests.services.processes import find_program

USERS = {"admin": "s3cret-admin", "operator": "op-pass"}


@pytest.fixture
def bmc():
    """A started fake BMC with firmware 2.10 and distinct ids; fails the test if it raised while answering."""
    with ipmi_bmc.FakeIpmiBmc(
        USERS, firmware_revision="2.10", manufacturer_id=0x0ABCDE, product_id=0x1234, device_id=0x21, aux_firmware_revision=b"\x01\x02\x03\x04"
    ) as server:
        yield server
        assert not server.errors, "\n".join(server.errors)


@pytest.fixture(scope="module")
def ipmitool_path() -> str:
    return find_program("ipmitool", "/usr/bin/ipmitool")


@contextlib.contextmanager
def pyghmi_client(server: ipmi_bmc.FakeIpmiBmc, user: str = "admin", password: str | None = None):
    """A logged-in pyghmi Command for server; its session is logged out and forgotten afterwards."""
    command = Command(bmc=server.address, port=server.port, userid=user, password=USERS[user] if password is None else password)
    try:
        yield command
    finally:
        command.ipmi_session.logout()
        ipmi_bmc.forget_pyghmi_sessions(server.port)


def ipmitool(
    path: str, server: ipmi_bmc.FakeIpmiBmc, *args: str, user: str = "admin", password: str | None = None, cipher: int | None = None
) -> subprocess.CompletedProcess:
    """Run ipmitool -I lanplus against server (1 s timeout, 1 retry: failures come back quickly)."""
    argv = [
        path,
        "-I",
        "lanplus",
        "-H",
        server.address,
        "-p",
        str(server.port),
        "-U",
        user,
        "-P",
        USERS[user] if password is None else password,
        "-N",
        "1",
        "-R",
        "1",
    ]
    if cipher is not None:
        argv += ["-C", str(cipher)]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=30, check=False)


def ipmitool_ok(path: str, server: ipmi_bmc.FakeIpmiBmc, *args: str, **kwargs) -> str:
    result = ipmitool(path, server, *args, **kwargs)
    assert result.returncode == 0, f"ipmitool {' '.join(args)}: rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def mc_info_field(output: str, name: str) -> str:
    """The value of one 'Name : value' line of ipmitool mc info."""
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    raise AssertionError(f"no {name!r} in ipmitool output:\n{output}")


# --------------------------------------------------------------------------- firmware revision encoding


@pytest.mark.parametrize("revision, encoded", [("2.10", (2, 0x10)), ("0.00", (0, 0)), ("2.05", (2, 0x05)), ("127.99", (127, 0x99)), ("10.50", (10, 0x50))])
def test_firmware_revision_round_trips(revision, encoded):
    assert ipmi_bmc.encode_firmware_revision(revision) == encoded
    assert ipmi_bmc.decode_firmware_revision(*encoded) == revision


@pytest.mark.parametrize("revision", ["2.5", "2.100", "128.00", "2.1a", "1.2.3", "v2.10", "", "2"])
def test_unrepresentable_firmware_revisions_are_refused(revision):
    with pytest.raises(ValueError):
        ipmi_bmc.encode_firmware_revision(revision)
    with pytest.raises(ValueError):
        ipmi_bmc.FakeIpmiBmc(USERS, firmware_revision=revision)


# --------------------------------------------------------------------------- pyghmi


def test_pyghmi_logs_in_after_refused_suite_17_and_reads_device_id(bmc):
    with pyghmi_client(bmc) as command:
        device = command.xraw_command(netfn=6, command=1)
        firmware = dict(command.get_firmware())
    data = bytes(device["data"])
    assert len(data) == 15
    assert (data[0], data[2], data[3]) == (0x21, 2, 0x10)  # device id, major, minor (BCD)
    assert data[6:9] == bytes([0xDE, 0xBC, 0x0A]) and data[9:11] == bytes([0x34, 0x12])  # LS byte first
    assert data[11:15] == b"\x01\x02\x03\x04"
    assert firmware == {"BMC Version": {"version": "2.10"}}
    # pyghmi proposed suite 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128, AES) first, then suite 3
    assert bmc.cipher_refusals == [(3, 4, 1)]
    assert [(event.user, event.ok) for event in bmc.logins] == [("admin", True)]
    assert bmc.unexpected_requests == []


def test_pyghmi_firmware_string_drops_the_leading_zero_of_the_minor(bmc):
    bmc.firmware_revision = "3.07"  # changed while running, e.g. after an update
    with pyghmi_client(bmc) as command:
        firmware = dict(command.get_firmware())["BMC Version"]["version"]
        data = bytes(command.xraw_command(netfn=6, command=1)["data"])
    assert ipmi_bmc.decode_firmware_revision(data[2], data[3]) == "3.07"
    assert firmware == "3.7"  # pyghmi formats the BCD byte with hex() and no padding
    bmc.update_in_progress = True
    with pyghmi_client(bmc) as command:
        assert dict(command.get_firmware())["BMC Version"]["version"] == "131.7"  # bit 7 ("not available") not masked


def test_pyghmi_power_actions_change_state_at_once_and_are_recorded(bmc):
    with pyghmi_client(bmc) as command:
        assert command.get_power() == {"powerstate": "on"}
        command.set_power("off")
        assert command.get_power() == {"powerstate": "off"}
        refused = command.raw_command(netfn=0, command=2, data=[2])  # power cycle while off
        command.set_power("boot")  # pyghmi: 'on' when off, else 'reset'
        command.set_power("boot")
        cycled = command.raw_command(netfn=0, command=2, data=[2])
        command.set_power("shutdown")  # soft off (ACPI), immediate here
        final = command.get_power()
    assert refused["code"] == ipmi_bmc.CC_NOT_IN_PRESENT_STATE
    assert cycled["code"] == 0
    assert final == {"powerstate": "off"}
    assert bmc.power_actions == ["off", "cycle", "on", "reset", "cycle", "soft"]
    assert [(event.before, event.after, event.code) for event in bmc.power_history] == [
        ("on", "off", 0),
        ("off", "off", 0xD5),
        ("off", "on", 0),
        ("on", "on", 0),
        ("on", "on", 0),
        ("on", "off", 0),
    ]
    assert bmc.boot_count == 3 and bmc.power_state == "off"


def test_pyghmi_boot_device(bmc):
    with pyghmi_client(bmc) as command:
        assert command.get_bootdev()["bootdev"] == "default"
        command.set_bootdev("network", persist=True, uefiboot=True)
        assert command.get_bootdev() == {"bootdev": "network", "persistent": True, "uefimode": True}
        command.set_bootdev("default")
        assert command.get_bootdev()["bootdev"] == "default"
    assert [(event.device, event.persistent, event.uefi) for event in bmc.boot_history] == [("network", True, True), ("default", False, False)]
    assert bmc.boot_device == "default"


def test_pyghmi_wrong_password_or_user_fails_cleanly(bmc):
    started = time.monotonic()
    with pytest.raises(IpmiException, match="Incorrect password provided"):
        Command(bmc=bmc.address, port=bmc.port, userid="admin", password="not-the-password")
    with pytest.raises(IpmiException, match="Unauthorized name"):
        Command(bmc=bmc.address, port=bmc.port, userid="nobody", password="whatever")
    assert time.monotonic() - started < 10
    # pyghmi stops at RAKP 2 on a wrong password (only it can tell); an unknown name is refused by the BMC
    assert [(event.user, event.ok, event.reason) for event in bmc.logins] == [("nobody", False, "unknown user")] * 2
    with pyghmi_client(bmc, "operator") as command:  # the BMC still serves
        assert command.get_power() == {"powerstate": "on"}
    assert bmc.logins[-1].ok and bmc.logins[-1].user == "operator"


def test_oem_and_raw_commands_are_answered_invalid_and_recorded(bmc):
    with pyghmi_client(bmc) as command:
        hpm_upgrade = command.raw_command(netfn=0x2C, command=0x31, data=[0x00, 0x01])  # HPM.1 Initiate Upgrade Action
        oem = command.raw_command(netfn=0x30, command=0x20, data=[0xAA])
    assert hpm_upgrade["code"] == oem["code"] == ipmi_bmc.CC_INVALID_COMMAND
    assert [(request.netfn, request.command, request.data) for request in bmc.unexpected_requests] == [(0x2C, 0x31, b"\x00\x01"), (0x30, 0x20, b"\xaa")]
    assert bmc.oem_requests == bmc.unexpected_requests


# --------------------------------------------------------------------------- ipmitool


def test_ipmitool_mc_info_shows_the_firmware_revision(bmc, ipmitool_path):
    output = ipmitool_ok(ipmitool_path, bmc, "mc", "info")
    assert mc_info_field(output, "Firmware Revision") == "2.10"
    assert mc_info_field(output, "Device ID") == str(0x21)
    assert mc_info_field(output, "Manufacturer ID") == str(0x0ABCDE)
    assert mc_info_field(output, "Product ID").startswith(f"{0x1234} ")
    assert mc_info_field(output, "Device Available") == "yes"
    assert "0x01\n    0x02\n    0x03\n    0x04" in output  # Aux Firmware Rev Info
    bmc.update_in_progress = True
    assert mc_info_field(ipmitool_ok(ipmitool_path, bmc, "mc", "info"), "Device Available") == "no"
    # ipmitool picked suite 3 from Get Channel Cipher Suites: nothing refused; its own PICMG/VITA probes are not "unexpected"
    assert bmc.cipher_refusals == []
    assert bmc.unexpected_requests == [] and any(request.probe for request in bmc.requests)


def test_ipmitool_and_pyghmi_agree_on_power(bmc, ipmitool_path):
    assert ipmitool_ok(ipmitool_path, bmc, "chassis", "power", "status").strip() == "Chassis Power is on"
    ipmitool_ok(ipmitool_path, bmc, "chassis", "power", "off")
    with pyghmi_client(bmc) as command:
        assert command.get_power() == {"powerstate": "off"}
        command.set_power("on")
    assert ipmitool_ok(ipmitool_path, bmc, "chassis", "power", "status").strip() == "Chassis Power is on"
    ipmitool_ok(ipmitool_path, bmc, "chassis", "power", "cycle")
    ipmitool_ok(ipmitool_path, bmc, "chassis", "power", "soft")
    refused = ipmitool(ipmitool_path, bmc, "chassis", "power", "cycle")
    assert refused.returncode != 0 and "Cycle failed" in refused.stderr
    with pyghmi_client(bmc) as command:
        assert command.get_power() == {"powerstate": "off"}
    assert bmc.power_actions == ["off", "on", "cycle", "soft", "cycle"]
    assert ipmitool_ok(ipmitool_path, bmc, "chassis", "bootdev", "pxe").strip() == "Set Boot Device to pxe"
    assert bmc.boot_device == "network"
    assert bmc.unexpected_requests == []


def test_ipmitool_wrong_password_unknown_user_and_suite_17_fail(bmc, ipmitool_path):
    # -v: ipmitool names the RAKP failure only when verbose; the exit status is 1 either way
    wrong = ipmitool(ipmitool_path, bmc, "-v", "mc", "info", password="not-the-password")
    assert wrong.returncode == 1 and "RAKP 2 HMAC is invalid" in wrong.stderr, wrong.stderr
    unknown = ipmitool(ipmitool_path, bmc, "-v", "mc", "info", user="operator", password="x")  # operator exists: wrong password
    assert unknown.returncode == 1 and "RAKP 2 HMAC is invalid" in unknown.stderr, unknown.stderr
    bmc.authdata.pop("operator")  # the BMC looks users up at each login
    nobody = ipmitool(ipmitool_path, bmc, "-v", "mc", "info", user="operator")
    assert nobody.returncode == 1 and "unauthorized name" in nobody.stderr, nobody.stderr
    refused = ipmitool(ipmitool_path, bmc, "mc", "info", cipher=17)
    assert refused.returncode == 1 and "no matching cipher suite" in refused.stderr, refused.stderr
    assert bmc.cipher_refusals == [(3, 4, 1)]  # suite 17: RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128
    # ipmitool stops at RAKP 2 on a wrong password: the BMC only sees the unknown name
    assert [(event.user, event.ok, event.reason) for event in bmc.logins] == [("operator", False, "unknown user")]
    assert bmc.requests == []
    assert mc_info_field(ipmitool_ok(ipmitool_path, bmc, "mc", "info", cipher=3), "Firmware Revision") == "2.10"


# --------------------------------------------------------------------------- several BMCs


def test_two_bmcs_at_once_with_different_revisions(ipmitool_path):
    with ipmi_bmc.IpmiBmcPool(2, {"admin": USERS["admin"]}, firmware_revisions=["2.10", "3.07"]) as pool:
        assert len(set(pool.ports)) == 2
        with pyghmi_client(pool[0]) as first, pyghmi_client(pool[1]) as second:
            assert dict(first.get_firmware())["BMC Version"]["version"] == "2.10"
            assert dict(second.get_firmware())["BMC Version"]["version"] == "3.7"
            second.set_power("off")
            assert first.get_power() == {"powerstate": "on"}
        revisions = [mc_info_field(ipmitool_ok(ipmitool_path, server, "mc", "info"), "Firmware Revision") for server in pool]
        statuses = [ipmitool_ok(ipmitool_path, server, "chassis", "power", "status").strip() for server in pool]
        assert revisions == ["2.10", "3.07"]
        assert statuses == ["Chassis Power is on", "Chassis Power is off"]
        assert [server.power_actions for server in pool] == [[], ["off"]]
        assert not any(server.errors for server in pool)
    for port in pool.ports:  # stopped: the ports are free again
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((ipmi_bmc.LOOPBACK, port))
