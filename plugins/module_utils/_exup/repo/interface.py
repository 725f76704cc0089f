# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the faces (action plugins, modules) may ask of a repository, and the records it answers with.

Every operation opens what it needs and closes it again: no connection, cursor, path of an index
file or SQL crosses this line. ``Repository`` (repository.py) implements it over the local store;
a repository reached over HTTP (issue 11) can implement the same operations.
"""

from __future__ import annotations

import dataclasses
import json
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server

if typing.TYPE_CHECKING:  # sync.py imports this module's records
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions, SyncResult
    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
    from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient


@dataclasses.dataclass(frozen=True)
class StoredPackage:
    """A package the repository holds: its info, the digest and size of its file, and where a local reader finds it."""

    info: PackageInfo
    sha256: str
    size: int
    path: str
    key_id: str
    source: str
    pinned: bool
    added_at: str

    @property
    def package_id(self) -> str:
        return self.info.package_id

    @property
    def module_id(self) -> str:
        return self.info.module_id

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def compatible(self) -> bool:
        return self.info.compatible


@dataclasses.dataclass(frozen=True)
class BmcModuleRecord:
    """What the repository remembers of one module of a server managed through its BMC (no agent keeps it)."""

    module_id: str
    previous: str | None = None
    block: str | None = None
    staged: str | None = None
    since: str | None = None


@dataclasses.dataclass(frozen=True)
class Tombstone:
    """A deleted package: a sync does not fetch it again until the deletion history is cleared."""

    package_id: str
    module_id: str
    version: str
    sha256: str
    deleted_at: str
    deleted_by: str
    forced: bool
    models: tuple
    os: tuple

    def as_dict(self) -> dict:
        """The tombstone as exup_package_info lists it."""
        return dict(dataclasses.asdict(self), forced=int(self.forced), models=list(self.models), os=list(self.os))

    def as_record(self) -> dict:
        """The row as stored (targets as JSON text): what the recovery record keeps."""
        return dict(self.as_dict(), models=json.dumps(list(self.models)), os=json.dumps(list(self.os)))


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Bytes of a package that failed its own checks: not downloaded again while the catalog points at them."""

    package_id: str
    sha256: str
    code: str
    reason: str
    refused_at: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FleetPage:
    """Registered servers with what the repository keeps of each (the inventory plugin's listing), in (manager_id, name) order."""

    servers: list[Server]
    #: (manager_id, server) -> module_id -> what the BMC path remembers of it
    bmc: dict[tuple[str, str], dict[str, BmcModuleRecord]]
    #: (manager_id, server) -> module_id -> (icon, set_at) an operator chose (003 Table 9)
    icons: dict[tuple[str, str], dict[str, tuple[str, str]]]
    #: the setting initial_manual_icon through time: (changed_at, icon), oldest first, its default first with changed_at ''
    initial_icons: list[tuple[str, str]]
    #: (manager_id, name) to ask the next page after; None: this was the last page
    next: tuple[str, str] | None = None
    #: (manager_id, name) -> when exup_info last read (and registered) the server's versions, UTC ISO 8601 as stored;
    #: a server never read (declared by exup_repo_sync servers, registered by older code) has none
    read_at: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)


class RepositoryApi(typing.Protocol):
    """The repository's operations, as the faces use them. None takes a connection; each call is one read or one writer session."""

    # --- presence of the store
    def exists(self) -> bool:
        """True once the repository has been created (a read never creates it)."""

    def readable(self) -> bool:
        """True when this user can read it."""

    # --- packages
    def packages(self, module_id: str | None = None) -> list[StoredPackage]:
        """Every stored package (of ``module_id`` only when given), in the index's order."""

    def packages_for(self, model: str, os_name: str, trusted_key_ids: typing.Iterable[str] | None = None) -> list[StoredPackage]:
        """Stored packages for a server's model and OS, compatible or not; with ``trusted_key_ids``, only those signed by one of them."""

    def deleted_packages(self) -> list[Tombstone]:
        """The deletion history, by package id."""

    def add_files(self, paths: list[str], keyring: KeyRing, mode: str = 'needed', check_mode: bool = False) -> list[dict]:
        """Add package files (003 Tables 13-14): one result dict per file."""

    def delete(self, package_ids: list[str], manager_id: str, force: bool = False, check_mode: bool = False) -> list[dict]:
        """Delete packages (003 Tables 15-16): one result dict per id."""

    def clear_tombstones(self, check_mode: bool = False) -> list[str]:
        """Clear the deletion history; the ids cleared."""

    def clear_refusals(self, package_ids: list[str] | None = None, check_mode: bool = False) -> list[dict]:
        """Forget remembered refusals so the next sync tries them again; those cleared."""

    def export(
        self,
        dest: str,
        package_ids: typing.Iterable[str] | None = None,
        module_ids: typing.Iterable[str] | None = None,
        models: typing.Iterable[str] | None = None,
        displayed_only: bool = True,
        check_mode: bool = False,
    ) -> list[dict]:
        """Save packages as one zip archive (003 §2.2.6)."""

    def listing(
        self, manager_id: str, event_limit: int = 100, module_ids: typing.Iterable[str] | None = None, models: typing.Iterable[str] | None = None
    ) -> dict:
        """What exup_package_info returns."""

    # --- the vendor feed, and recovery
    def sync(self, client: HttpClient, keyring: KeyRing, options: SyncOptions, check_mode: bool = False) -> SyncResult:
        """Sync from the vendor feed of ``options`` (003 §2.2.1-2.2.2) over ``client``; check mode only says what it would do."""

    def rebuild(self, keyring: KeyRing, check_mode: bool = False) -> dict:
        """Rebuild a missing, damaged or lost index from the pool (003 §4.4): what exup_package state=rebuilt returns."""

    # --- servers of this manager
    def record_server(self, manager_id: str, server: Server) -> bool:
        """Record one server (and the manager's presence); True when its record changed."""

    def forget_server(self, manager_id: str, name: str, cause: str | None = None) -> bool:
        """Forget a server whose agent was removed; True when it was known."""

    def server_record_differs(self, manager_id: str, server: Server) -> bool:
        """True when ``record_server`` would change the record (check mode)."""

    def bmc_module_records(self, manager_id: str, server: str) -> dict[str, BmcModuleRecord]:
        """module_id -> what is remembered of a server managed through its BMC."""

    def set_bmc_module(self, manager_id: str, server: str, module_id: str, **fields: typing.Any) -> None:
        """Update fields (previous, block, staged) of one module's record."""

    def fleet(self, after: tuple[str, str] | None = None, limit: int | None = None) -> FleetPage:
        """The registered servers after ``after`` (at most ``limit``), with their BMC records and chosen icons: one read."""

    # --- statuses, restarts, settings
    def status_icons(self, manager_id: str, server: str, infos: typing.Iterable[PackageInfo], kinds: typing.Iterable[str] = ('linux',)) -> dict[str, str]:
        """module_id -> the Table 9 icon of each module with packages that are not auto-update on this path."""

    def set_manual_icons(self, manager_id: str, server: str, module_ids: typing.Iterable[str], icon: str, check_mode: bool = False) -> list[dict]:
        """Set the Table 9 icon of modules of one server."""

    def restarting(self, manager_id: str, server: str, boot_id: str | None = None, power: str | None = None) -> list[str]:
        """The modules a restart under way is for (Table 8 "rebooting")."""

    def request_reboot(self, manager_id: str, server: str, modules: typing.Iterable[str], boot_id: str | None = None, seconds: int = 3600) -> None:
        """Record a restart exup allowed or did."""

    def read_settings(self, check_mode: bool = False) -> dict:
        """The repository's settings."""

    def change_settings(self, wanted: dict, check_mode: bool = False) -> tuple:
        """(before, after) of a settings change."""

    # --- the log
    def log_events(self, items: list[dict]) -> list[dict]:
        """Write events (dicts of events.event) at once; returns them with their time."""

    def job_reported(self, job_id: str) -> bool:
        """True when the log already holds an outcome (not the start) of host job ``job_id``."""

    def recent_events(self, limit: int, server: str | None = None) -> list[dict]:
        """The newest ``limit`` events of the log (of ``server`` alone when given), newest first; read only.

        A repository service too old to send them (API version before 4) answers none: callers fall back as without history."""
