"""Tests of the Redfish BMC emulator (tests/services/redfish.py) with independent clients.

curl (a subprocess: TLS against the test CA, Basic auth), pyghmi's Redfish client (what the product
uses: inventory, push update, power, BMC reset) and plain http.client for the raw protocol (task
states, SimpleUpdate, errors). SimpleUpdate images come from a real nginx or the recording HTTP
server, so the BMC's download is seen on the server side.
"""

import base64
import http.client
import json
import os
import ssl
import subprocess
import time

import pytest
from pyghmi.redfish.command import Command  # pylint: disable=import-error  # pyghmi is a test tool installed in .venv

from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.tests.services import redfish
from ansible_collections.exup.fleet.tests.system import helpers

MODEL = redfish.DEFAULT_MODEL
# curl must not pick up a proxy from the environment of the machine running the tests.
CURL_ENV = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


# --------------------------------------------------------------------------- clients


def pyghmi_client(bmc: redfish.RedfishBmc, system: str | None = None, password: str | None = None) -> Command:
    """A new pyghmi client (it caches GETs for 30 s) that accepts exactly this BMC's certificate."""
    assert bmc.tls_files is not None  # the bmc fixtures serve https
    expected = ssl.PEM_cert_to_DER_cert(bmc.tls_files.cert_path.read_text())
    return Command(bmc.host, bmc.user, password or bmc.password, verifycallback=lambda der: der == expected, sysurl=bmc.system_path(system), port=bmc.port)


def pyghmi_versions(bmc: redfish.RedfishBmc, system: str | None = None) -> dict:
    return {name: (info["version"], info.get("state")) for name, info in pyghmi_client(bmc, system).get_firmware()}


def call(bmc: redfish.RedfishBmc, method: str, path: str, body=None, *, auth=None, raw: bytes | None = None, headers: dict | None = None):
    """(status, headers, JSON or None) of one request, verified against the test CA."""
    context = ssl.create_default_context(cafile=str(bmc.ca_path))
    connection = http.client.HTTPSConnection(bmc.host, bmc.port, context=context, timeout=10)
    user, password = auth or (bmc.user, bmc.password)
    all_headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(), **(headers or {})}
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    return response.status, response.headers, (json.loads(payload) if payload.strip() else None)


def wait_task(bmc: redfish.RedfishBmc, task_path: str, timeout: float = 10.0, until=redfish.TERMINAL_STATES) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, _headers, task = call(bmc, "GET", task_path)
        assert status == 200, task
        if task["TaskState"] in until or time.monotonic() > deadline:
            return task
        time.sleep(0.05)


def curl(bmc: redfish.RedfishBmc, path: str, *args: str) -> tuple[int, str]:
    result = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args, bmc.url(path)], capture_output=True, text=True, env=CURL_ENV, timeout=30, check=False
    )
    body, _sep, status = result.stdout.rpartition("\n")
    return int(status), body + result.stderr


def image_file(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def bmc():
    """One BMC with one system (model MODEL, BIOS 1.00, BMC 2.00); fails the test on a server-side error."""
    with redfish.RedfishBmc() as server:
        yield server
        assert not server.errors, "\n".join(server.errors)


# --------------------------------------------------------------------------- TLS, auth, resources


def test_curl_tls_basic_auth_and_resources(bmc):
    status, body = curl(bmc, "/redfish/v1/", "--cacert", str(bmc.ca_path))
    assert status == 200 and json.loads(body)["UpdateService"] == {"@odata.id": redfish.UPDATE_SERVICE}
    status, body = curl(bmc, "/redfish/v1/Systems", "--cacert", str(bmc.ca_path))
    assert status == 401, body
    status, body = curl(bmc, "/redfish/v1/Systems", "--cacert", str(bmc.ca_path), "-u", f"{bmc.user}:wrong")
    assert status == 401 and "Incorrect username or password" in body
    status, body = curl(bmc, "/redfish/v1/Systems", "--cacert", str(bmc.ca_path), "-u", f"{bmc.user}:{bmc.password}")
    assert status == 200 and json.loads(body)["Members"] == [{"@odata.id": bmc.system_path()}]
    status, body = curl(bmc, "/redfish/v1/")  # the system CAs do not know the test CA
    assert status == 0 and "certificate" in body

    status, _headers, system = call(bmc, "GET", bmc.system_path())
    assert status == 200
    assert (system["Model"], system["BiosVersion"], system["PowerState"]) == (MODEL, "1.00", "On")
    status, _headers, manager = call(bmc, "GET", bmc.manager_path())
    assert manager["FirmwareVersion"] == "2.00" and "#Manager.Reset" in manager["Actions"]
    status, _headers, service = call(bmc, "GET", redfish.UPDATE_SERVICE)
    assert service["MultipartHttpPushUri"] == redfish.MULTIPART_PUSH_URI
    assert service["HttpPushUriOptions"]["HttpPushUriApplyTime"]["ApplyTime"] == "OnReset"
    assert service["Actions"]["#UpdateService.SimpleUpdate"]["TransferProtocol@Redfish.AllowableValues"] == ["HTTP", "HTTPS"]
    status, _headers, item = call(bmc, "GET", bmc.firmware_path("BMC"))
    assert (item["Version"], item["Updateable"], item["RelatedItem"]) == ("2.00", True, [{"@odata.id": bmc.manager_path()}])
    assert call(bmc, "GET", bmc.firmware_path("NIC"))[2]["Updateable"] is False


def test_power_changes_are_immediate_by_default_and_delayed_on_request(bmc):
    reset = bmc.system_path() + "/Actions/ComputerSystem.Reset"
    assert call(bmc, "POST", reset, {"ResetType": "ForceOff"})[0] == 204
    assert call(bmc, "GET", bmc.system_path())[2]["PowerState"] == "Off"
    bmc.power_delay = 0.6
    assert call(bmc, "POST", reset, {"ResetType": "On"})[0] == 204
    assert bmc.power_state() == "Off"
    time.sleep(0.7)
    assert bmc.power_state() == "On"


# --------------------------------------------------------------------------- pyghmi: push updates


def test_pyghmi_bios_push_applies_at_the_next_system_reset(bmc, tmp_path):
    client = pyghmi_client(bmc)
    assert pyghmi_versions(bmc) == {"BIOS": ("1.00", "active"), "BMC": ("2.00", "active"), "NIC": ("22.31.6", "active")}
    # a real, signed exup package (the emulator reads its ExUpInfo.xml; the signature is not its business)
    package = helpers.package_bytes(helpers.info("r120h-bios-1.10", "system-bios", "1.10", models=(MODEL,), kind="bmc"), SigningKey.generate())
    progress = []
    assert client.update_firmware(image_file(tmp_path, "bios.zip", package), progress=progress.append) == "pending"
    assert progress[-1] == {"phase": "apply", "progress": 100.0}
    task = bmc.tasks()[-1]
    assert task["TaskState"] == "Completed"
    assert [message["MessageId"] for message in task["Messages"]] == ["Update.1.0.TargetDetermined", "Update.1.0.AwaitToActivate", "Base.1.16.ResetRequired"]
    assert "reset required" in task["Messages"][1]["Message"]
    assert pyghmi_versions(bmc)["BIOS"] == ("1.00", "active") and bmc.staged() == {"BIOS": "1.10"}
    assert pyghmi_versions(bmc)["BIOS-Pending"] == ("1.10", "pending")

    assert client.set_power("boot") == {"pendingpowerstate": "reset"}
    versions = pyghmi_versions(bmc)
    assert versions["BIOS"] == ("1.10", "active") and "BIOS-Pending" not in versions
    assert call(bmc, "GET", bmc.system_path())[2]["BiosVersion"] == "1.10"
    posts = [path for method, path, status in bmc.requests if method == "POST" and status == 202]
    assert posts == [redfish.MULTIPART_PUSH_URI]


def test_pyghmi_bmc_firmware_by_apply_time(bmc, tmp_path):
    client = pyghmi_client(bmc)
    image = image_file(tmp_path, "bmc.zip", redfish.make_image(MODEL, "bmc-firmware", "2.10"))
    parameters = {"Targets": [bmc.firmware_path("BMC")], "@Redfish.OperationApplyTime": "OnReset"}
    assert client.update_firmware(image, otherfields={"UpdateParameters": parameters}) == "pending"
    assert bmc.versions()["BMC"] == "2.00" and bmc.staged() == {"BMC": "2.10"}
    bmc.bmc_reboot_seconds = 1.0
    client.reset_bmc()
    time.sleep(0.4)  # the reboot starts 0.2 s after the answer
    with pytest.raises(OSError):  # rebooting: connections are dropped
        pyghmi_client(bmc)
    time.sleep(1.0)
    assert pyghmi_versions(bmc)["BMC"] == ("2.10", "active")

    bmc.bmc_reboot_seconds = 0
    image = image_file(tmp_path, "bmc2.zip", redfish.make_image(MODEL, "bmc-firmware", "2.20"))
    parameters = {"Targets": [bmc.manager_path()], "@Redfish.OperationApplyTime": "Immediate"}
    pyghmi_client(bmc).update_firmware(image, otherfields={"UpdateParameters": parameters})
    assert pyghmi_versions(bmc)["BMC"] == ("2.20", "active") and not bmc.staged()
    assert call(bmc, "GET", bmc.manager_path())[2]["FirmwareVersion"] == "2.20"


def test_pyghmi_raw_http_push(tmp_path):
    with redfish.RedfishBmc(multipart=False, apply_time="Immediate") as bmc:
        assert "MultipartHttpPushUri" not in call(bmc, "GET", redfish.UPDATE_SERVICE)[2]
        image = image_file(tmp_path, "bios.zip", redfish.make_image(MODEL, "system-bios", "1.05"))
        with open(image, "rb") as stream:  # pyghmi takes a file object as data
            pyghmi_client(bmc).update_firmware("bios.zip", data=stream)
        # Immediate with the host on: the BMC restarts the host, which activates the BIOS
        assert bmc.versions()["BIOS"] == "1.05" and bmc.power_state() == "On"
        methods = [(method, path) for method, path, _status in bmc.requests if method != "GET"]
        assert methods == [("PATCH", redfish.UPDATE_SERVICE), ("POST", redfish.HTTP_PUSH_URI), ("PATCH", redfish.UPDATE_SERVICE)]
        assert not bmc.errors


def test_pyghmi_bad_images_fail(bmc, tmp_path):
    client = pyghmi_client(bmc)
    other_model = image_file(tmp_path, "other.zip", redfish.make_image("Express5800/T120h-2M", "system-bios", "9.99"))
    with pytest.raises(Exception, match=r"Verification of image 'other.zip'.*not Express5800/R120h-1M"):
        client.update_firmware(other_model)
    with pytest.raises(Exception, match="not an update package"):
        client.update_firmware(image_file(tmp_path, "junk.bin", b"MZ not a zip"))
    bmc.reject_images = "Image signature invalid (test knob)."
    with pytest.raises(Exception, match=r"^Image signature invalid \(test knob\)\.$"):
        client.update_firmware(image_file(tmp_path, "good.zip", redfish.make_image(MODEL, "system-bios", "1.10")))
    bmc.reject_images = False
    bmc.fail_tasks = True
    with pytest.raises(Exception, match=r"Installation of image 'good2.zip' to 'BIOS' failed"):
        client.update_firmware(image_file(tmp_path, "good2.zip", redfish.make_image(MODEL, "system-bios", "1.10")))
    assert bmc.versions() == {"BIOS": "1.00", "BMC": "2.00", "NIC": "22.31.6"} and not bmc.staged()
    assert [task["TaskState"] for task in bmc.tasks()] == ["Exception"] * 3


def test_image_check_is_pluggable(tmp_path):
    seen = []

    def check(image, state):
        seen.append((image, state.component, state.model, state.version))
        return (True, "7.0") if image == b"BIOS!" and state.component == "BIOS" else (False, "not for me")

    with redfish.RedfishBmc(redfish.BmcSystem(model="Lab/Model-X", nic_updateable=True), image_check=check) as bmc:
        pyghmi_client(bmc).update_firmware(image_file(tmp_path, "x.bin", b"BIOS!"))
        assert bmc.staged() == {"BIOS": "7.0"}
        assert sorted(item[1] for item in seen) == ["BIOS", "BMC", "NIC"] and seen[0][2:] == ("Lab/Model-X", "1.00")


# --------------------------------------------------------------------------- tasks, SimpleUpdate, several BMCs


def test_task_states_delay_hang_and_one_update_at_a_time(bmc):
    image = redfish.make_image(MODEL, "system-bios", "1.20")
    bmc.task_delay = 0.6
    status, headers, task = call(bmc, "POST", redfish.HTTP_PUSH_URI, raw=image, headers={"Content-Type": "application/octet-stream"})
    assert status == 202 and task["TaskState"] == "New"
    assert headers["Location"] == task["TaskMonitor"]
    assert call(bmc, "GET", task["TaskMonitor"])[0] == 202
    running = wait_task(bmc, task["@odata.id"], until=("Running",))
    assert running["TaskState"] == "Running" and 0 < running["PercentComplete"] < 100
    done = wait_task(bmc, task["@odata.id"])
    assert (done["TaskState"], done["PercentComplete"]) == ("Completed", 100) and "EndTime" in done
    assert call(bmc, "GET", task["TaskMonitor"])[0] == 200

    bmc.task_delay, bmc.hang_tasks = 0, True
    status, _headers, task = call(bmc, "POST", redfish.HTTP_PUSH_URI, raw=image)
    time.sleep(0.3)
    assert call(bmc, "GET", task["@odata.id"])[2]["TaskState"] == "Running"
    status, _headers, error = call(bmc, "POST", redfish.HTTP_PUSH_URI, raw=image)
    assert status == 503 and error["error"]["@Message.ExtendedInfo"][0]["MessageId"] == "Update.1.0.UpdateInProgress"
    bmc.hang_tasks = False
    assert wait_task(bmc, task["@odata.id"])["TaskState"] == "Completed"
    collection = call(bmc, "GET", redfish.TASKS)[2]
    assert collection["Members@odata.count"] == 2


def test_simple_update_downloads_the_image_from_nginx(bmc, nginx, tmp_feed_dir):
    (tmp_feed_dir / "fw").mkdir()
    (tmp_feed_dir / "fw" / "bmc-2.30.zip").write_bytes(redfish.make_image(MODEL, "bmc-firmware", "2.30"))
    body = {"ImageURI": nginx.url("fw/bmc-2.30.zip"), "TransferProtocol": "HTTP", "Targets": [bmc.manager_path()], "@Redfish.OperationApplyTime": "OnReset"}
    status, headers, task = call(bmc, "POST", redfish.SIMPLE_UPDATE_URI, body)
    assert status == 202, task
    assert headers["Location"] == task["TaskMonitor"]
    done = wait_task(bmc, task["@odata.id"])
    assert done["TaskState"] == "Completed", done["Messages"]
    assert bmc.staged() == {"BMC": "2.30"}
    fetched = [entry for entry in nginx.wait_for_log(1) if entry["uri"] == "/fw/bmc-2.30.zip"]
    assert fetched and fetched[0]["status"] == 200 and fetched[0]["user_agent"] == "exup-test-bmc"
    assert call(bmc, "POST", bmc.manager_path() + "/Actions/Manager.Reset", {"ResetType": "GracefulRestart"})[0] == 204
    assert bmc.versions()["BMC"] == "2.30"

    # a missing file: the task ends in Exception (TransferFailed)
    status, _headers, task = call(bmc, "POST", redfish.SIMPLE_UPDATE_URI, {"ImageURI": nginx.url("fw/missing.zip")})
    failed = wait_task(bmc, task["@odata.id"])
    assert failed["TaskState"] == "Exception"
    assert failed["Messages"][-1]["MessageId"] == "Update.1.0.TransferFailed" and "HTTP 404" in failed["Messages"][-1]["Message"]


def test_simple_update_over_https_verifies_the_server_when_given_a_ca(bmc, nginx_tls, tmp_feed_dir):
    (tmp_feed_dir / "bios.zip").write_bytes(redfish.make_image(MODEL, "system-bios", "1.40"))
    bmc.remote_ca = str(bmc.ca_path)  # not the CA of nginx's certificate
    task = call(bmc, "POST", redfish.SIMPLE_UPDATE_URI, {"ImageURI": nginx_tls.url("bios.zip")})[2]
    failed = wait_task(bmc, task["@odata.id"])
    assert failed["TaskState"] == "Exception" and "CERTIFICATE_VERIFY_FAILED" in failed["Messages"][-1]["Message"]
    bmc.remote_ca = str(nginx_tls.ca_path)
    task = call(bmc, "POST", redfish.SIMPLE_UPDATE_URI, {"ImageURI": nginx_tls.url("bios.zip")})[2]
    assert wait_task(bmc, task["@odata.id"])["TaskState"] == "Completed"
    assert bmc.staged() == {"BIOS": "1.40"} and [entry["status"] for entry in nginx_tls.wait_for_log(1)] == [200]
    bmc.reset_system(reset_type="ForceOff")
    assert bmc.staged() == {"BIOS": "1.40"}
    bmc.reset_system(reset_type="On")
    assert bmc.versions()["BIOS"] == "1.40" and bmc.power_state() == "On"


def test_simple_update_sends_credentials_and_checks_parameters(bmc, hostile_server):
    url = hostile_server.add("/secure/bios.zip", redfish.make_image(MODEL, "system-bios", "1.30"))
    body = {"ImageURI": url, "Username": "fwuser", "Password": "fw pass"}
    task = call(bmc, "POST", redfish.SIMPLE_UPDATE_URI, body)[2]
    assert wait_task(bmc, task["@odata.id"])["TaskState"] == "Completed"
    sent = hostile_server.requests_for("/secure/bios.zip")[0].headers["Authorization"]
    assert base64.b64decode(sent.split()[1]) == b"fwuser:fw pass"
    in_url = url.replace("http://", "http://urluser:url%40pw@")
    task = call(bmc, "POST", redfish.SIMPLE_UPDATE_URI, {"ImageURI": in_url})[2]
    assert wait_task(bmc, task["@odata.id"])["TaskState"] == "Completed"
    sent = hostile_server.requests_for("/secure/bios.zip")[1].headers["Authorization"]
    assert base64.b64decode(sent.split()[1]) == b"urluser:url@pw"
    assert bmc.downloads[1]["url"].startswith("http://urluser:***@")

    bad = [
        ({"Targets": []}, "ActionParameterMissing"),
        ({"ImageURI": url, "TransferProtocol": "TFTP"}, "ActionParameterNotSupported"),
        ({"ImageURI": url, "Targets": ["/redfish/v1/Chassis/x"]}, "ActionParameterValueError"),
        ({"ImageURI": url, "@Redfish.OperationApplyTime": "AtMaintenanceWindowStart"}, "ActionParameterValueNotInList"),
        ({"ImageURI": url, "Bogus": 1}, "ActionParameterUnknown"),
    ]
    for request, message_id in bad:
        status, _headers, error = call(bmc, "POST", redfish.SIMPLE_UPDATE_URI, request)
        assert status == 400 and error["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith(message_id), request
    assert len(bmc.tasks()) == 2


def test_several_bmcs_and_systems_are_independent(tmp_path):
    systems = [redfish.BmcSystem("node-a"), redfish.BmcSystem("node-b", bios_version="3.00")]
    with redfish.redfish_bmcs(2) as (first, second), redfish.RedfishBmc(systems, user="root", password="calvin") as multi:
        assert len({first.port, second.port, multi.port}) == 3 and first.ca_path == second.ca_path
        pyghmi_client(first).update_firmware(image_file(tmp_path, "a.zip", redfish.make_image(MODEL, "system-bios", "1.01")))
        assert first.staged() == {"BIOS": "1.01"} and second.staged() == {}
        assert call(first, "GET", "/redfish/v1/Systems", auth=("root", "calvin"))[0] == 401

        # several systems behind one BMC: pyghmi needs sysurl; ids name the system
        assert pyghmi_versions(multi, "node-b")["node-b.BIOS"] == ("3.00", "active")
        parameters = {"Targets": [multi.firmware_path("BIOS", "node-b")], "@Redfish.OperationApplyTime": "Immediate"}
        image = image_file(tmp_path, "b.zip", redfish.make_image(MODEL, "system-bios", "3.10"))
        pyghmi_client(multi, "node-b").update_firmware(image, otherfields={"UpdateParameters": parameters})
        assert multi.versions("node-b")["BIOS"] == "3.10" and multi.versions("node-a")["BIOS"] == "1.00"
