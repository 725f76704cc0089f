# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The automatic download inside the repository service (003 §3.3 4-(ア)-①, §3.4.1) and its notice (§3.4.4).

A thread of the service sleeps until the next run that ``schedule.next_run`` gives for the repository's
settings, waking at least every POLL_SECONDS to read them again (a changed schedule takes effect within a
minute, without a restart). When a run is due it syncs from the configured feed (``config.feed_url`` and
``trusted_keys``, through the proxy of the settings) as the repository host's own manager, for the servers
every manager registered, and logs ``scheduled_download_started`` and then ``_finished``, ``_failed`` or
``_cancelled``. A run that added packages logs ``packages_arrived`` (the packages and the managed servers they
concern: the alert viewer's event of §3.4.4.1) and posts that notice to each webhook of ``notify_webhooks``
(``webhook_sent`` / ``webhook_failed``; a webhook that fails stops nothing).

- One scheduler per store: every granian worker starts one, and only the one that holds the flock of
  ``<store>/service/scheduler.lock`` schedules; the others try again at each wake, so another worker takes
  over when the holder's process ends.
- The end of the last run is kept in ``<store>/service/schedule.json`` (with the next run and when it was
  decided): a restart neither runs again a slot that was done nor skips one that was missed (schedule.py
  makes one run of all the slots missed while the service was down). A run cancelled by a shutdown is not
  recorded as done: it runs again when the service is back.
- ``stop()`` (the app's lifespan shutdown) cancels a run in flight: the downloads stop at their next piece of
  data and the sync ends as a Ctrl-C ends it (what was indexed stays, ``repository_update_cancelled``).

The clock is injected (``clock``, ``wait``) so tests drive the loop without sleeping; see docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import logging
import os
import threading
import typing
import urllib.parse
from collections.abc import Callable

from ansible_collections.exup.fleet.plugins.module_utils._exup import events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import format_time, parse_time, utc_now
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import Sync, SyncOptions, SyncResult
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import notify, schedule

if typing.TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.pipeline import Finished
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
    from ansible_collections.exup.fleet.plugins.module_utils._exup.service.config import ServiceConfig

LOCK_FILE = 'scheduler.lock'
STATE_FILE = 'schedule.json'
#: the longest sleep: the settings are read again at least this often
POLL_SECONDS = 60.0
#: how long stop() waits for a cancelled run to end (granian kills a worker after main.WORKER_KILL_SECONDS, 30 s)
STOP_SECONDS = 20.0
#: the time limit of one webhook (connect, TLS, send, answer)
WEBHOOK_TIMEOUT = 10.0
#: packages and servers the packages_arrived event lists at most (the webhooks get them all); the counts are whole
NOTICE_LIMIT = 1000

Clock = Callable[[], datetime.datetime]
Wait = Callable[[float], bool]  # sleep up to this many seconds; True when the scheduler is stopping

LOG = logging.getLogger(__name__)


class RunCancelled(KeyboardInterrupt):
    """The service is stopping: the scheduled sync ends as Ctrl-C ends one (what was indexed stays, and is logged)."""


class StoppableSync(Sync):
    """A Sync that ``cancel`` ends: no download starts once it is set, and the ones in flight stop (``stopping``)."""

    def __init__(self, repo: Repository, client: typing.Any, keyring: typing.Any, options: SyncOptions, cancel: threading.Event) -> None:
        super().__init__(repo, client, keyring, options)
        self.cancel = cancel

    def fetch_package(self, base_url: str, entry: typing.Any) -> Finished:
        if self.cancel.is_set():
            raise RunCancelled()
        finished = super().fetch_package(base_url, entry)
        if self.cancel.is_set() and finished.error is not None and finished.error.code == 'download_cancelled':
            raise RunCancelled()  # stopped by the cancel, not refused: no package_refused event for it
        return finished


def prepared_sync(
    repository: Repository, config: ServiceConfig, manager_id: str, cancel: threading.Event, servers: list | None = None, accept_version_reset: bool = False
) -> StoppableSync:
    """The service's sync from its feed (config.feed_url, trusted_keys) through the proxy of the settings.

    Whole catalogs (``full_catalog``): a downstream repository syncs from this one's feed view, which serves the last
    complete catalog verified. With ``upstream: repository`` the feed is an upstream repository service (a chained
    repository service, 003 Fig. 5), reached with ``feed_username`` and the password of ``feed_password_file``.
    download_unavailable without a feed_url; the proxy's and the keys' own errors as they are.
    """
    from ansible_collections.exup.fleet.plugins.module_utils._exup import signing, transport
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import chained_options

    if not config.feed_url:
        raise ExupError('this repository service has no feed_url: it cannot download (its configuration names none)', code='download_unavailable')
    client = transport.HttpClient(ca_path=config.feed_ca_path, **repository.proxy_options())
    keyring = signing.KeyRing.from_pem_list(list(config.trusted_keys))
    options = SyncOptions(feed_url=str(config.feed_url), manager_id=manager_id, servers=servers, accept_version_reset=accept_version_reset, full_catalog=True)
    if config.upstream == 'repository':
        options = chained_options(options)
    if config.feed_username:
        client.use_credentials(options.feed_url, config.feed_username, str(config.feed_password()))
    return StoppableSync(repository, client, keyring, options, cancel)


def origin(url: str) -> str:
    """scheme://host[:port] of a webhook URL: its path may be a secret (chat webhooks' are), so events name only this."""
    try:
        parts = urllib.parse.urlsplit(url)
        return '%s://%s' % (parts.scheme, parts.netloc.rpartition('@')[2])
    except ValueError:
        return '(not shown)'


def arrived_notice(repository: Repository, result: SyncResult) -> notify.PackagesNotice:
    """The packages_arrived notice of a sync's additions: each package's targets from its row, and the servers of
    every manager still present (the ones the repository downloads for)."""
    with repository.read() as index:
        rows = index.packages()
        servers = repository.active_servers(index)
    added = []
    for item in result.added:
        row = rows.get(item['package_id'])
        if row is not None:
            added.append(
                {'package_id': row.package_id, 'module_id': row.module_id, 'version': row.version, 'models': list(row.info.models), 'os': list(row.info.os)}
            )
    return notify.new_packages_notice(added, [{'manager_id': s.manager_id, 'name': s.name, 'model': s.model, 'os': s.os} for s in servers])


def log_event(repo: Repository, code: str, cause: str | None = None, **detail: typing.Any) -> None:
    """Log one event of the service's own work; when the store cannot take it, the service goes on."""
    try:
        repo.log_events([ev.event(code, cause, **detail)])
    except (ExupError, OSError):
        LOG.exception('cannot log %s', code)


def announce_arrivals(repo: Repository, result: SyncResult, log: Callable[..., None], stopping: threading.Event, timeout: float) -> None:
    """Log packages_arrived for a sync's additions and post it to each webhook of the settings (003 §3.4.4): a
    scheduled run's and a "download now"'s alike. A failure is an event, never an exception."""
    from ansible_collections.exup.fleet.plugins.module_utils._exup.service import credentials

    notice = arrived_notice(repo, result)
    log(
        'packages_arrived',
        packages=notice['packages'][:NOTICE_LIMIT],
        servers=notice['servers'][:NOTICE_LIMIT],
        package_count=len(notice['packages']),
        server_count=len(notice['servers']),
    )
    with repo.read() as index:
        targets = repo.settings(index)['notify_webhooks']
    secret = credentials.kept_secret(repo.store.root, 'webhook_secret') if targets else None
    for number, url in enumerate(targets):
        if stopping.is_set():
            log('webhook_failed', 'not sent: the repository service stopped', webhook=number, origin=origin(url), error='service_stopping')
            continue
        answer = notify.send_webhook(url, notice, timeout=timeout, secret=secret)
        if answer.get('ok'):
            log('webhook_sent', webhook=number, origin=origin(url), status=answer.get('status'))
        else:
            log('webhook_failed', answer.get('msg'), webhook=number, origin=origin(url), error=answer.get('error'), status=answer.get('status'))


class Scheduler:
    """The scheduled download of one service process; ``start()`` its thread, ``stop()`` it (cancelling a run)."""

    def __init__(
        self,
        repository: Repository,
        config: ServiceConfig,
        clock: Clock = utc_now,
        wait: Wait | None = None,
        poll_seconds: float = POLL_SECONDS,
        webhook_timeout: float = WEBHOOK_TIMEOUT,
        runner: Callable[[Scheduler], SyncResult] | None = None,
    ) -> None:
        self.repo = repository
        self.config = config
        self.clock = clock
        self.stopping = threading.Event()
        self.wait: Wait = wait or self.stopping.wait
        self.poll_seconds = poll_seconds
        self.webhook_timeout = webhook_timeout
        self.runner = runner or Scheduler.download
        self.folder = os.path.join(config.store, 'service')
        self.lock_path = os.path.join(self.folder, LOCK_FILE)
        self.state_path = os.path.join(self.folder, STATE_FILE)
        self.cancel = threading.Event()
        self.active: Sync | None = None
        self.thread: threading.Thread | None = None
        self._lock_fd: int | None = None

    # ----------------------------------------------------------------- the thread
    def start(self) -> None:
        self.thread = threading.Thread(target=self.run_forever, name='exup-scheduler', daemon=True)
        self.thread.start()

    def stop(self, timeout: float = STOP_SECONDS) -> bool:
        """Stop the loop and cancel a run in flight; True when the thread ended within ``timeout`` seconds."""
        self.stopping.set()
        self.cancel.set()
        active = self.active
        if active is not None:
            active.stopping.set()  # the downloads in flight stop at their next piece of data
        ended = True
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)
            ended = not self.thread.is_alive()
        if ended:
            self.release()
        return ended

    def run_forever(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    seconds = self.step()
                except Exception:  # pylint: disable=broad-exception-caught  # a bad wake must not end the schedule
                    LOG.exception('the scheduled download could not be planned')
                    seconds = self.poll_seconds
                if self.wait(max(0.0, seconds)):
                    break
        finally:
            self.release()

    # ----------------------------------------------------------------- one wake
    def step(self) -> float:
        """Take the schedule if free, read the settings, run when due. Returns the seconds until the next wake."""
        if not self.hold():
            return self.poll_seconds
        plan = self.current_schedule()
        state = self.read_state()
        now = self.clock()
        moment = schedule.next_run(plan, _time(state.get('last_run')), now)
        if moment is not None and moment <= now and not self.stopping.is_set():
            state = self.run_once(plan, moment, state)
            now = self.clock()
            moment = schedule.next_run(plan, _time(state.get('last_run')), now)
        self.write_state(dict(state, next_run=format_time(moment) if moment else None, checked_at=format_time(now), pid=os.getpid()))
        if moment is None:
            return self.poll_seconds
        return min(self.poll_seconds, max(0.0, (moment - now).total_seconds()))

    def current_schedule(self) -> schedule.DownloadSchedule:
        """The schedule of the settings now (read without a settings_read event: this is no operator's read)."""
        with self.repo.read() as index:
            values = self.repo.settings(index)
        try:
            return schedule.DownloadSchedule.from_settings(values)
        except ExupError:  # decode_setting gives defaults for bad rows: not expected, but never a crash loop
            return schedule.DownloadSchedule()

    def run_once(self, plan: schedule.DownloadSchedule, slot: datetime.datetime, state: dict) -> dict:
        """One scheduled download for ``slot``; returns the state to keep (last_run only when the run ended)."""
        started = self.clock()
        common = {'slot': format_time(slot)}
        self.log('scheduled_download_started', feed=self.config.feed_url, **common)
        state = dict(state, last_started=format_time(started), last_slot=format_time(slot), last_outcome='running')
        self.write_state(state)
        try:
            result = self.runner(self)
        except RunCancelled:
            self.log('scheduled_download_cancelled', 'the repository service stopped', **common)
            state = dict(state, last_outcome='cancelled')  # not done: it runs again when the service is back
            self.write_state(state)
            return state
        except ExupError as exc:
            state = self.finished(state, 'failed')
            self.log('scheduled_download_failed', exc.msg, error=exc.code, next_run=self.next_text(plan, state), **common)
            return state
        except Exception as exc:  # pylint: disable=broad-exception-caught  # the log must tell of every end
            LOG.exception('the scheduled download failed')
            state = self.finished(state, 'failed')
            self.log('scheduled_download_failed', '%s: %s' % (type(exc).__name__, exc), error='service_failed', next_run=self.next_text(plan, state), **common)
            return state
        state = self.finished(state, 'finished')
        self.log(
            'scheduled_download_finished',
            added=len(result.added),
            removed=len(result.removed),
            refused=len(result.refused),
            next_run=self.next_text(plan, state),
            **common,
        )
        if result.added:
            self.announce(result)
        return state

    def finished(self, state: dict, outcome: str) -> dict:
        """The run ended (well or not): its end is the last run, kept before anything else can fail."""
        state = dict(state, last_run=format_time(self.clock()), last_outcome=outcome)
        self.write_state(state)
        return state

    def next_text(self, plan: schedule.DownloadSchedule, state: dict) -> str | None:
        moment = schedule.next_run(plan, _time(state.get('last_run')), self.clock())
        return format_time(moment) if moment else None

    def download(self) -> SyncResult:
        """The sync of a scheduled run (the default runner): cancelled by stop()."""
        from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import code_digest

        sync = prepared_sync(self.repo, self.config, self.config.manager_id, self.cancel)
        code_digest()  # as Repository.sync does: the sources that run
        self.active = sync
        try:
            if self.cancel.is_set():
                raise RunCancelled()
            return sync.run()
        finally:
            self.active = None

    # ----------------------------------------------------------------- the notice (003 §3.4.4)
    def announce(self, result: SyncResult) -> None:
        """Log packages_arrived and post it to each webhook of the settings; a failure is an event, never an exception."""
        announce_arrivals(self.repo, result, self.log, self.stopping, self.webhook_timeout)

    # ----------------------------------------------------------------- the store's files
    def log(self, code: str, cause: str | None = None, **detail: typing.Any) -> None:
        log_event(self.repo, code, cause, **detail)

    def hold(self) -> bool:
        """True when this scheduler holds the store's schedule (it takes the flock when it is free)."""
        if self._lock_fd is not None:
            return True
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._lock_fd = fd
        return True

    def release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def read_state(self) -> dict:
        """The kept state; a missing or unreadable file is no state (never run: schedule.py waits for a fresh slot)."""
        import json

        try:
            with open(self.state_path, encoding='utf-8') as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def write_state(self, state: dict) -> None:
        from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import write_json_atomically

        with contextlib.suppress(OSError):  # a full disk must not stop the schedule; the next wake writes it again
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            write_json_atomically(self.state_path, state)


def _time(text: object) -> datetime.datetime | None:
    """A kept time, or None when there is none or it does not read (then no run counts from it)."""
    if not isinstance(text, str):
        return None
    try:
        return parse_time(text, 'last run')
    except ExupError:
        return None


def for_service(repository: Repository, config: ServiceConfig) -> Scheduler:
    """The scheduler of a service process (the app's lifespan starts and stops it)."""
    return Scheduler(repository, config)
