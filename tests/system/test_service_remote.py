"""Managers that share one repository service over HTTPS (issue 11): the modules with ``repository: https://...``.

A vendor feed on nginx, the repository service (granian, HTTPS, a fresh test CA) whose configuration names that feed,
and two managers (``site-a``, ``site-b``) that run the repository modules as processes against the service's URL, as a
controller or an AWX job would. Also: the repository's own manager deleting on the repository host (normal and forced,
003 Tables 15-16), the version check of 003 §1.3 Fig. 3, and presence expiry (§2.2.8) with a controllable clock.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo import remote
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import PRESENCE_LIFETIME, Repository, server_from_dict
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import synthesize_feed
from ansible_collections.exup.fleet.tests.services.nginx import nginx_server
from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK, free_port
from ansible_collections.exup.fleet.tests.services.repo_service import ADMIN_PASSWORD, READ_PASSWORD, RepoService
from ansible_collections.exup.fleet.tests.system import helpers as h

MODULES = Path(__file__).resolve().parents[2] / "plugins" / "modules"


class Shared:
    """The vendor feed, the service over it, and how a manager runs a repository module against the service."""

    def __init__(self, root: Path, feed, service: RepoService, models: list[str], collections_path: Path) -> None:
        self.root, self.feed, self.service, self.models, self.collections_path = root, feed, service, models, collections_path

    @property
    def store(self) -> Path:
        return self.service.store

    def remote_params(self, manager_id: str, **params) -> dict:
        base = {
            "repository": self.service.base_url,
            "repository_password": ADMIN_PASSWORD,
            "repository_ca_path": str(self.service.ca_path),
            "manager_id": manager_id,
        }
        return dict(base, **params)

    def run(self, module: str, params: dict) -> dict:
        """One module run as a process (what AnsiballZ runs), its JSON result."""
        args = self.root / ("args-%s.json" % module)
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
        env = dict(os.environ, PYTHONPATH=str(self.collections_path))
        proc = subprocess.run([sys.executable, str(MODULES / (module + ".py")), str(args)], check=False, capture_output=True, text=True, env=env, timeout=180)
        assert "Traceback" not in proc.stderr, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def servers(self, manager_id: str, *models: str) -> list[dict]:
        return [{"name": "%s-%d" % (manager_id, number), "model": model, "os": "rhel9"} for number, model in enumerate(models)]


@pytest.fixture(scope="module")
def shared(tmp_path_factory, collections_path: Path):
    root = tmp_path_factory.mktemp("shared")
    feed_dir = root / "feed"
    feed_dir.mkdir()
    key = SigningKey.generate()
    _count, models = synthesize_feed(str(feed_dir), key, entries=90, versions_per_module=3, avg_size=4096, seed=11)
    pub = root / "vendor.pub"
    pub.write_bytes(key.public_pem())
    with nginx_server(feed_dir) as nginx:
        config = {"feed_url": nginx.url(h.CATALOG), "trusted_keys": [str(pub)], "manager_id": "repo-host"}
        with RepoService(root / "store", tls=True, **config) as service:
            yield Shared(root, nginx, service, sorted(models), collections_path)


def stored_ids(store: Path) -> set[str]:
    return {package.package_id for package in Repository(str(store)).packages()}


def test_two_managers_share_one_repository_over_https(shared: Shared):
    model_a, model_b = shared.models[0], shared.models[1]
    first = shared.run("exup_repo_sync", shared.remote_params("site-a", servers=shared.servers("site-a", model_a)))
    assert not first.get("failed"), first
    assert first["changed"] is True and first["added"], first
    second = shared.run("exup_repo_sync", shared.remote_params("site-b", servers=shared.servers("site-b", model_b)))
    assert not second.get("failed"), second
    assert second["added"], second

    # each manager sees the other's packages flagged "used by another manager" (003 Table 20)
    listing = shared.run("exup_package_info", shared.remote_params("site-a"))
    assert not listing.get("failed"), listing
    flags = {package["package_id"]: package for package in listing["packages"]}
    only_b = [pid for pid, package in flags.items() if model_b in package["models"] and model_a not in package["models"]]
    only_a = [pid for pid, package in flags.items() if model_a in package["models"] and model_b not in package["models"]]
    assert only_a and only_b
    assert all(flags[pid]["used_by_other_manager"] for pid in only_b)
    assert not any(flags[pid]["used_by_other_manager"] for pid in only_a)
    assert {manager["manager_id"] for manager in listing["managers"]} >= {"site-a", "site-b"}

    # the same sync again changes nothing (idempotent over the network too)
    again = shared.run("exup_repo_sync", shared.remote_params("site-a", servers=shared.servers("site-a", model_a)))
    assert not again.get("failed") and again["changed"] is False, again


def test_a_remote_manager_cannot_delete(shared: Shared):
    before = stored_ids(shared.store)
    assert before, "the sharing test fills the store first"
    victim = sorted(before)[0]
    result = shared.run("exup_package", shared.remote_params("site-a", state="absent", package_ids=[victim]))
    assert result["failed"] and result["error"] == "remote_delete_refused", result
    assert "cannot delete" in result["msg"] and "003 §3.6" in result["msg"]
    assert stored_ids(shared.store) == before


def test_deletes_on_the_repository_host_across_managers(shared: Shared):
    """The repository host's manager deletes locally: a package another manager uses is refused, unless forced (Tables 15-16)."""
    repo = Repository(str(shared.store))
    listing = repo.listing("site-a")
    used_by_b = sorted(package["package_id"] for package in listing["packages"] if package["used_by_other_manager"])
    assert used_by_b
    refused = repo.delete([used_by_b[0]], "site-a")
    assert refused[0]["result"] != "deleted" and "site-b" in refused[0]["managers"], refused
    assert used_by_b[0] in stored_ids(shared.store)
    forced = repo.delete([used_by_b[0]], "site-a", force=True)
    assert forced[0]["result"] == "deleted" and forced[0]["forced"] is True
    assert used_by_b[0] not in stored_ids(shared.store)
    tombstones = shared.run("exup_package_info", shared.remote_params("site-b", repository_user="read", repository_password=READ_PASSWORD))
    assert used_by_b[0] in {tombstone["package_id"] for tombstone in tombstones["tombstones"]}


def test_a_read_user_cannot_register_servers(shared: Shared):
    before = h.db_rows(shared.store)["servers"]
    params = shared.remote_params("site-c", servers=shared.servers("site-c", shared.models[0]), repository_user="read", repository_password=READ_PASSWORD)
    result = shared.run("exup_repo_sync", params)
    assert result["failed"] and result["error"] == "forbidden", result
    assert h.db_rows(shared.store)["servers"] == before


@pytest.mark.parametrize(
    "change, code, words",
    [
        ({"repository_password": "not-the-password-at-all"}, "auth_failed", "wrong user name or password"),
        ({"repository_password": None}, "argument_invalid", "give repository_password"),
        ({"repository_ca_path": None}, "repository_unreachable", "CERTIFICATE_VERIFY_FAILED"),
        ({"repository": "https://user:secret@%s:8080" % LOOPBACK}, "argument_invalid", "not a repository service URL"),
    ],
    ids=["wrong-password", "no-password", "unknown-ca", "credentials-in-url"],
)
def test_a_bad_connection_setting_is_one_clear_error_and_changes_nothing(shared: Shared, change, code, words):
    before = h.db_rows(shared.store)
    params = shared.remote_params("site-a", servers=shared.servers("site-a", shared.models[0]))
    params.update(change)
    params = {key: value for key, value in params.items() if value is not None}
    result = shared.run("exup_repo_sync", params)
    assert result["failed"] and result["error"] == code, result
    assert words in result["msg"], result["msg"]
    assert "secret" not in json.dumps(result) and ADMIN_PASSWORD not in json.dumps(result)
    assert h.db_rows(shared.store)["servers"] == before["servers"]


def test_an_unreachable_repository_is_named(shared: Shared):
    url = "https://%s:%d" % (LOOPBACK, free_port())  # nobody listens there
    result = shared.run("exup_package_info", shared.remote_params("site-a", repository=url))
    assert result["failed"] and result["error"] == "repository_unreachable", result
    assert result["msg"].startswith("cannot reach the repository at %s" % url), result["msg"]


def test_an_older_repository_limits_features_by_name(shared: Shared, monkeypatch):
    """003 §1.3 Fig. 3: this code knows a feature the (older) service lacks; that feature is refused, the others work."""
    monkeypatch.setattr(wire, "API_VERSION", wire.API_VERSION + 1)
    monkeypatch.setitem(wire.FEATURES, "listing", wire.API_VERSION)
    repo = remote.RemoteRepository(remote.RemoteOptions(shared.service.base_url, ADMIN_PASSWORD, ca_path=str(shared.service.ca_path), manager_id="site-a"))
    assert repo.about()["limited"] == ["listing"]
    assert repo.packages()  # a feature both have
    with pytest.raises(ExupError) as refused:
        repo.listing("site-a")
    assert refused.value.code == "repository_too_old"
    assert "lacks listing" in refused.value.msg and "Update the exup.fleet collection on the repository host" in refused.value.msg


def test_presence_expiry_with_a_controllable_clock(shared: Shared):
    """003 §2.2.8: two months without presence forget a manager (and so its needs); presence within the window resets it."""
    store = str(shared.store)
    now = datetime.datetime.now(datetime.UTC)

    def at(days: int) -> Repository:
        return Repository(store, clock=lambda: now + datetime.timedelta(days=days))

    service = remote.RemoteRepository(remote.RemoteOptions(shared.service.base_url, ADMIN_PASSWORD, ca_path=str(shared.service.ca_path), manager_id="site-x"))
    servers = [server_from_dict("site-x", {"name": "x-1", "model": shared.models[2], "os": "rhel9"})]  # a model only site-x has
    before = stored_ids(shared.store)
    synced = service.sync(None, None, SyncOptions(feed_url="", manager_id="site-x", servers=servers))  # the service downloads for it
    only_x = stored_ids(shared.store) - before
    assert only_x and {item["package_id"] for item in synced.added} == only_x
    assert service.announce("site-x", servers) == []  # presence over the network, now
    assert [server for server in h.db_rows(shared.store)["servers"] if server[0] == "site-x"]
    assert "site-x" in {manager["manager_id"] for manager in Repository(store).listing("site-x")["managers"]}
    days = PRESENCE_LIFETIME.days
    at(days - 10).announce("site-y")  # another manager's presence before the window ends expires nobody
    assert "site-x" in {manager["manager_id"] for manager in Repository(store).listing("site-x")["managers"]}
    at(days - 5).note_presence("site-x")  # site-x uses the repository again: its window starts again
    for other in ("site-a", "site-b"):  # the other managers stay present all along
        at(days + 5).note_presence(other)
    assert "site-x" not in at(days + 5).announce("site-y")  # two months after the first presence, not after the last
    expired = at(days - 5 + days + 1).announce("site-y")  # two months after its last presence
    assert "site-x" in expired
    listing = Repository(store).listing("site-a")
    assert "site-x" not in {manager["manager_id"] for manager in listing["managers"]}
    assert not [server for server in h.db_rows(shared.store)["servers"] if server[0] == "site-x"]
    assert not only_x & stored_ids(shared.store) and before <= stored_ids(shared.store)  # its needs went with it, the others' stay


def test_the_interface_is_implemented_by_both():
    """Every operation of RepositoryApi exists on the remote repository too (a new one without a remote face fails here)."""
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import RepositoryApi

    wanted = {name for name in vars(RepositoryApi) if not name.startswith("_")}
    assert wanted <= set(dir(remote.RemoteRepository)), sorted(wanted - set(dir(remote.RemoteRepository)))
    assert isinstance(Server, type)


def test_setting_a_repository_checks_it_first_and_force_keeps_an_unreachable_one(shared: Shared):
    """003 §1.3 Fig. 2: the connection and the password are checked; an unreachable repository is kept only with force."""
    checked = shared.run("exup_manager", shared.remote_params("site-m", servers=shared.servers("site-m", shared.models[0])))
    assert not checked.get("failed"), checked
    assert checked["connected"] is True and checked["repository"]["limited"] == [] and checked["repository"]["api_version"] == wire.API_VERSION
    assert "site-m" in {row[0] for row in h.db_rows(shared.store)["servers"]}
    url = "https://%s:%d" % (LOOPBACK, free_port())  # nobody listens there
    before = h.db_rows(shared.store)["managers"]
    cancelled = shared.run("exup_manager", shared.remote_params("site-n", repository=url))
    assert cancelled["failed"] and cancelled["error"] == "repository_unreachable", cancelled
    kept = shared.run("exup_manager", shared.remote_params("site-n", repository=url, force=True))
    assert not kept.get("failed") and kept["connected"] is False and kept["changed"] is False, kept
    assert "the setting is kept (force)" in json.dumps(kept["warnings"]), kept
    wrong = shared.run("exup_manager", shared.remote_params("site-n", repository_password="not-the-password-at-all", force=True))
    assert wrong["failed"] and wrong["error"] == "auth_failed", wrong  # a wrong password is never kept
    assert h.db_rows(shared.store)["managers"] == before


def test_a_manual_icon_is_set_through_the_service(shared: Shared):
    server = shared.servers("site-a", shared.models[0])[0]["name"]
    params = shared.remote_params("site-a", server_name=server, modules=["system-bios"], icon="latest")
    before = h.db_rows(shared.store).get("manual_icons", [])
    checked = shared.run("exup_server_status", dict(params, _ansible_check_mode=True))
    assert not checked.get("failed") and checked["changed"] is True, checked
    assert h.db_rows(shared.store).get("manual_icons", []) == before  # check mode wrote nothing
    done = shared.run("exup_server_status", params)
    assert not done.get("failed") and done["changed"] is True, done
    assert [(row["module_id"], row["after"]) for row in done["icons"]] == [("system-bios", "latest")]
    again = shared.run("exup_server_status", params)
    assert again["changed"] is False, again


def test_a_remote_manager_adds_a_package_by_hand(shared: Shared):
    """003 §3.4.3 through the service: the file is uploaded, verified there with the keys the caller trusts, then indexed."""
    feed_files = sorted((shared.root / "feed" / "packages").rglob("*.zip"))
    stored = stored_ids(shared.store)
    catalog = json.loads((shared.root / "feed" / h.CATALOG).read_text())["signed"]["entries"]
    by_url = {entry["url"]: entry["package_id"] for entry in catalog}
    candidates = [path for path in feed_files if by_url.get(path.relative_to(shared.root / "feed").as_posix()) not in stored]
    assert candidates
    path = candidates[0]
    package_id = by_url[path.relative_to(shared.root / "feed").as_posix()]
    params = shared.remote_params("site-a", state="present", src=[str(path)], mode="pinned", trusted_keys=[str(shared.root / "vendor.pub")])
    checked = shared.run("exup_package", dict(params, _ansible_check_mode=True))
    assert not checked.get("failed") and checked["changed"] is True, checked
    assert package_id not in stored_ids(shared.store)  # check mode uploaded and verified, and added nothing
    added = shared.run("exup_package", params)
    assert not added.get("failed") and added["changed"] is True, added
    assert [row["result"] for row in added["results"]] == ["added"] and package_id in stored_ids(shared.store)
    assert not list((shared.store / "tmp" / "uploads").iterdir())  # the uploads are gone
    other_key = SigningKey.generate()
    other_pub = shared.root / "other.pub"
    other_pub.write_bytes(other_key.public_pem())
    untrusted = shared.run("exup_package", dict(params, src=[str(candidates[1])], trusted_keys=[str(other_pub)]))
    assert untrusted["results"][0]["result"].startswith("error"), untrusted  # verified with the caller's keys, not the service's
    assert by_url[candidates[1].relative_to(shared.root / "feed").as_posix()] not in stored_ids(shared.store)


def test_packages_are_saved_from_the_service_to_the_managers_machine(shared: Shared):
    """003 §2.2.6 through the service: the repository builds the archive, the manager's side gets it at dest."""
    import zipfile

    dest = shared.root / "saved" / "site-a.zip"
    dest.parent.mkdir(exist_ok=True)
    params = shared.remote_params("site-a", state="exported", dest=str(dest), models=[shared.models[0]])
    checked = shared.run("exup_package", dict(params, _ansible_check_mode=True))
    assert not checked.get("failed") and checked["changed"] is True and not dest.exists(), checked
    saved = shared.run("exup_package", params)
    assert not saved.get("failed") and saved["changed"] is True, saved
    with zipfile.ZipFile(dest) as archive:
        names = set(archive.namelist())
    assert {item["file"] for item in saved["exported"]} <= names and "index.html" in names
    assert not list((shared.store / "tmp" / "exports").iterdir())  # fetched, then removed at the repository
    again = shared.run("exup_package", params)
    assert not again.get("failed") and again["changed"] is False, again  # the same archive is there already


def test_a_rebuild_is_asked_of_the_repository_host(shared: Shared):
    params = shared.remote_params("site-a", state="rebuilt", trusted_keys=[str(shared.root / "vendor.pub")])
    before = h.db_rows(shared.store)
    checked = shared.run("exup_package", dict(params, _ansible_check_mode=True))
    assert not checked.get("failed") and checked["changed"] is False, checked  # a sound index: nothing to rebuild
    assert h.db_rows(shared.store) == before


def test_a_pool_file_altered_at_the_repository_is_refused_by_the_manager(shared: Shared, tmp_path: Path):
    repo = remote.RemoteRepository(remote.RemoteOptions(shared.service.base_url, ADMIN_PASSWORD, ca_path=str(shared.service.ca_path), manager_id="site-a"))
    if not repo.packages():  # run alone: the service downloads for site-a first
        servers = [server_from_dict("site-a", item) for item in shared.servers("site-a", shared.models[0])]
        repo.sync(None, None, SyncOptions(feed_url="", manager_id="site-a", servers=servers))
    package = repo.packages()[0]
    pool_file = Path(Repository(str(shared.store)).store.pool_path(package.sha256))
    original = pool_file.read_bytes()
    mode = pool_file.stat().st_mode
    pool_file.chmod(0o600)
    try:
        pool_file.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])  # same size, other bytes
        with pytest.raises(ExupError) as refused:
            repo.fetch_file(package, str(tmp_path))
        assert refused.value.code == "digest_mismatch" and "is not the file the repository listed" in refused.value.msg
        assert list(tmp_path.iterdir()) == []  # nothing kept, not even the part
    finally:
        pool_file.write_bytes(original)
        pool_file.chmod(mode)
    assert Path(repo.fetch_file(package, str(tmp_path))).read_bytes() == original


def test_check_mode_and_readers_leave_no_presence(shared: Shared):
    """Check mode records nothing, presence included; a reader's calls are no manager's presence."""
    checked = shared.run("exup_manager", dict(shared.remote_params("site-check"), _ansible_check_mode=True))
    assert not checked.get("failed") and checked["connected"] is True, checked
    read = shared.run("exup_package_info", shared.remote_params("site-reader", repository_user="read", repository_password=READ_PASSWORD))
    assert not read.get("failed"), read
    managers = {row[0] for row in h.db_rows(shared.store)["managers"]}
    assert not managers & {"site-check", "site-reader"}, managers
    done = shared.run("exup_manager", shared.remote_params("site-check"))
    assert not done.get("failed") and "site-check" in {row[0] for row in h.db_rows(shared.store)["managers"]}
