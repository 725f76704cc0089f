# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The download pipeline of a sync (issue 10): worker threads fetch, verify and place; one thread indexes in batches.

Worker threads do everything that needs no index: the download, the verification (from the bytes in hand
when the package is small enough to keep, else from the file in constant memory), the match against the
catalog entry, the file's fsync and its rename into the pool. The sync thread, the only one that touches the
index, takes what has finished in batches: it fsyncs each pool directory of the batch once, then writes the
batch's rows, refusals and events in one transaction. A row therefore exists only once its file and its
directory entry are durable, and a kill at any point leaves at worst pool files without rows (verified
again by the next sync, or collected).

A window bounds what is in flight (submitted and not yet finished); a finished package keeps only its
VerifiedPackage until its batch is indexed, and only its summary after. A batch is committed when BATCH_LIMIT
packages have finished or BATCH_SECONDS after the first of them: a batch bounded by the window (16 with
4 workers) flushed about one pool directory per package, as there are 256 of them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
import typing
from collections.abc import Callable, Iterable

if typing.TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import CatalogEntry
    from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
    from ansible_collections.exup.fleet.plugins.module_utils._exup.package import VerifiedPackage

#: Packages up to this size are kept in memory as they arrive and verified from those bytes; larger ones are
#: verified from the file (constant memory, a 2 GiB package included). At most ``workers`` of them are held at once.
MEMORY_BOUND = 4 * 1024 * 1024
#: Packages in flight (submitted, downloading, verifying, placing) per worker.
WINDOW_PER_WORKER = 4
#: Most packages indexed in one transaction. Finished packages wait for their batch holding only their VerifiedPackage,
#: so the batch is not bounded by the window: a bigger batch flushes each pool directory for more packages at once.
BATCH_LIMIT = 512
#: A batch is committed at the latest this long after its first package finished (progress, and less to verify again
#: after a kill).
BATCH_SECONDS = 0.5

T = typing.TypeVar('T')
R = typing.TypeVar('R')


@dataclasses.dataclass
class Finished:
    """What a worker made of one catalog entry: verified and in the pool, refused, or cut by the deadline."""

    entry: CatalogEntry
    verified: VerifiedPackage | None = None  # in the pool (its directory not yet flushed), ready for its row
    downloaded: bool = False  # fetched by this sync (not a file left in the pool by a crash): counts in bytes_downloaded
    error: ExupError | None = None
    bytes_refused: bool = False  # the error is the vendor's bytes' own: remembered for that sha256
    cut: bool = False  # not started or cut short by the sync's time limit: not a refusal


@dataclasses.dataclass
class Tally:
    """The sync thread's count over the batches: for progress, and the ids the deadline cut."""

    total: int
    done: int = 0
    cut: list[str] = dataclasses.field(default_factory=list)


def run_pipeline(  # pylint: disable=too-many-arguments
    items: Iterable[T],
    work: Callable[[T], R],
    commit: Callable[[list[R]], None],
    workers: int,
    window: int,
    batch_limit: int = BATCH_LIMIT,
    batch_seconds: float = BATCH_SECONDS,
    abort: Callable[[], None] | None = None,
) -> None:
    """``work(item)`` in ``workers`` threads, at most ``window`` items in flight; ``commit(batch)`` in this thread with what has
    finished, once ``batch_limit`` have or ``batch_seconds`` after the first of them did, and at the end. An exception of
    ``work`` or ``commit`` (Ctrl-C too) cancels what has not started and calls ``abort`` (which makes the running ``work``
    end soon) before it waits for them; what had finished and was not committed is dropped."""
    todo = iter(items)
    pending: set[concurrent.futures.Future] = set()
    batch = _Batch(commit, batch_limit, batch_seconds)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        while True:
            _fill(pool, todo, pending, work, max(1, window))
            if not pending:
                break
            # While this thread commits, the workers go on: the next wait finds more finished (self-balancing).
            done, pending = concurrent.futures.wait(pending, timeout=batch.time_left(), return_when=concurrent.futures.FIRST_COMPLETED)
            batch.add(future.result() for future in done)
            batch.commit_if_due()
        batch.commit_all()
    except BaseException:
        if abort is not None:
            abort()  # what runs ends at its next step instead of being waited for to its end
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Batch:
    """What has finished and waits for its commit, and when that commit is due."""

    def __init__(self, commit: Callable[[list], None], limit: int, seconds: float) -> None:
        self.commit, self.limit, self.seconds = commit, max(1, limit), seconds
        self.waiting: list = []
        self.since = 0.0  # when the first of the waiting finished

    def add(self, finished: Iterable) -> None:
        if not self.waiting:
            self.since = time.monotonic()
        self.waiting.extend(finished)

    def time_left(self) -> float | None:
        """How long the next wait may last: until this batch is due, or for ever when nothing waits."""
        return max(0.0, self.since + self.seconds - time.monotonic()) if self.waiting else None

    def commit_if_due(self) -> None:
        while len(self.waiting) >= self.limit:
            self._commit()
        if self.waiting and self.time_left() == 0.0:
            self.commit_all()

    def commit_all(self) -> None:
        while self.waiting:
            self._commit()

    def _commit(self) -> None:
        batch, self.waiting = self.waiting[: self.limit], self.waiting[self.limit :]
        self.since = time.monotonic()  # what is left waits its own time from here
        self.commit(batch)


def _fill(pool: concurrent.futures.ThreadPoolExecutor, todo: typing.Iterator, pending: set, work: Callable, window: int) -> None:
    while len(pending) < window:
        item = next(todo, _END)
        if item is _END:
            return
        pending.add(pool.submit(work, item))


_END = object()
