# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sync fingerprint (issue 10): a digest of everything the plan and the download selection depend on (pure).

A re-sync whose feed answered 304 and whose fingerprint equals the one stored by the last sync that left
nothing to retry has nothing to do: the plan, the selection and the pruning would come out the same. The
inputs are cheap on purpose: the stored rows enter as ``data_generation``, a counter that SQLite triggers
bump on every write to the tables the plan reads (db.GENERATION_TABLES), not as their 20,000 decoded rows.
What is not in a table enters by value: the managers active now (the presence window expires one by the clock
alone), this sync's manager and feed, the trusted keys, and the code's own digest (other rules, other plan).

The memo is what the skipped sync reports as a full one would: the refusals it would repeat and the tombstoned
packages it would skip (``memo_text`` / ``read_memo``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping

#: bump when the fingerprint's inputs change meaning (the code digest covers the rest)
FINGERPRINT_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class FingerprintInputs:
    """What a sync's plan and selection are made of, in cheap form."""

    code: str  # digest of the source of the modules that decide (repository.code_digest)
    data_generation: int  # db.Index.data_generation: writes to packages, feed, tombstones, refusals, servers
    feed_state: Mapping[str, str]  # catalog version, etag/last_modified, key ids, feed id, base_url, feed_url
    active_managers: Iterable[str]  # managers inside the presence window now, after expiry
    manager_id: str
    feed_url: str
    trusted_key_ids: Iterable[str]


def fingerprint(inputs: FingerprintInputs) -> str:
    """The SHA-256 (hex) of ``inputs`` in a canonical form."""
    canonical = {
        'format': FINGERPRINT_FORMAT,
        'code': inputs.code,
        'data_generation': inputs.data_generation,
        'feed_state': sorted(inputs.feed_state.items()),
        'active_managers': sorted(inputs.active_managers),
        'manager_id': inputs.manager_id,
        'feed_url': inputs.feed_url,
        'trusted_key_ids': sorted(inputs.trusted_key_ids),
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(',', ':')).encode('utf-8')).hexdigest()


@dataclasses.dataclass(frozen=True)
class SyncMemo:
    """The stored fingerprint and what a sync over that state reports without doing anything."""

    fingerprint: str
    repeated_refusals: tuple = ()  # SyncResult.refused items (repeated: True)
    skipped_tombstoned: tuple = ()


def memo_text(memo: SyncMemo) -> str:
    return json.dumps(
        {'fingerprint': memo.fingerprint, 'repeated_refusals': list(memo.repeated_refusals), 'skipped_tombstoned': list(memo.skipped_tombstoned)},
        sort_keys=True,
    )


def read_memo(text: str | None) -> SyncMemo | None:
    """The memo of ``text``; None when there is none or it does not decode (then nothing is skipped)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        refusals = tuple(dict(item) for item in data['repeated_refusals'])
        memo = SyncMemo(str(data['fingerprint']), refusals, tuple(str(package_id) for package_id in data['skipped_tombstoned']))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return memo
