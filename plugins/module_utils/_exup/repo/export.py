# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Save packages of the repository as one zip archive (003 §2.2.6, Fig. 27): packages/, index.html, css/.

The selection is pure (``select_for_export``); the archive is written beside its destination and
renamed into place, so a failure or a stop midway leaves no partial archive, only an event.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import os
import typing
import zipfile
from collections.abc import Iterable

from ansible_collections.exup.fleet.plugins.module_utils._exup import events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import ID_RULE, is_id
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import PackageRow
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.plan import displayed_packages
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key

if typing.TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository

INDEX_CSS = """body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #999; padding: 0.3em 0.6em; text-align: left; }
th { background: #eee; }
"""


def select_for_export(
    stored: dict[str, PackageRow], package_ids: Iterable[str] | None, module_ids: Iterable[str] | None, models: Iterable[str] | None, displayed_only: bool
) -> list[PackageRow]:
    """By package ids, or by modules (optionally limited to target models); ``displayed_only``: only the newest a server shows."""
    if package_ids:
        return [stored[package_id] for package_id in sorted(package_ids) if package_id in stored]
    chosen = [row for row in stored.values() if (not module_ids or row.module_id in module_ids) and (not models or set(models) & set(row.info.models))]
    if displayed_only:
        shown = displayed_packages([row.info for row in chosen], models)
        chosen = [row for row in chosen if row.package_id in shown]
    return sorted(chosen, key=lambda row: (row.module_id, version_key(row.version)))


def discard_file(path: str) -> str | None:
    """Remove ``path`` if it is there; None when gone, else why it could not be removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def render_index_html(selected: list[PackageRow], saved_at: str) -> str:
    rows = []
    for row in selected:
        info = row.info
        rows.append(
            '<tr><td><a href="packages/{pid}.zip">{pid}</a></td><td>{module}</td><td>{version}</td><td>{date}</td>'
            '<td>{models}</td><td>{os}</td><td>{kind}</td><td>{auto}</td><td>{sha}</td></tr>'.format(
                pid=html.escape(row.package_id),
                module=html.escape(info.module_name),
                version=html.escape(info.version),
                date=html.escape(info.release_date),
                models=html.escape(', '.join(info.models)),
                os=html.escape(', '.join(info.os)),
                kind=html.escape(info.kind),
                auto='yes' if info.auto_update else 'no (apply by hand)',
                sha=row.sha256,
            )
        )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Update package archive</title>'
        '<link rel="stylesheet" href="css/exup.css"></head><body>\n<h1>Update package archive</h1>\n<p>Saved %s.</p>\n'
        '<table><tr><th>Package</th><th>Component</th><th>Version</th><th>Release date</th><th>Models</th><th>OS</th>'
        '<th>Kind</th><th>Auto-update</th><th>SHA-256</th></tr>\n%s\n</table></body></html>\n'
    ) % (html.escape(saved_at), '\n'.join(rows))


def check_selection(stored: dict[str, PackageRow], selected: list[PackageRow], package_ids: Iterable[str] | None) -> None:
    """Refuse an empty selection, unknown ids, and ids that cannot name an archive member."""
    if not selected:
        raise RepositoryError('no package in the repository matches the selection to save', code='nothing_to_save')
    missing = sorted(set(package_ids or ()) - set(stored))
    if missing:
        raise RepositoryError('no such package in the repository: %s' % ', '.join(missing), code='package_not_found')
    for row in selected:  # an index from before ids were checked for every schema version (packages/<id>.zip)
        if not is_id(row.package_id):
            raise RepositoryError(
                'package %s in the index has an id that is not %s: it cannot be saved (delete it)' % (ascii(row.package_id)[:100], ID_RULE),
                code='package_id_invalid',
            )


@dataclasses.dataclass(frozen=True)
class ExportRequest:
    """What to save and where: by package ids, or by modules (optionally limited to target models); see select_for_export."""

    dest: str
    package_ids: Iterable[str] | None = None
    module_ids: Iterable[str] | None = None
    models: Iterable[str] | None = None
    displayed_only: bool = True


def save_archive(repo: Repository, request: ExportRequest, check_mode: bool = False) -> list[dict]:
    """Save the selection of ``request`` from ``repo`` (a Repository) to ``request.dest``; returns what the archive holds."""
    dest = request.dest
    with repo.read() as index:
        stored = index.packages()
    selected = select_for_export(stored, request.package_ids, request.module_ids, request.models, request.displayed_only)
    check_selection(stored, selected, request.package_ids)
    summary = [
        {'package_id': row.package_id, 'module_id': row.module_id, 'version': row.version, 'file': 'packages/%s.zip' % row.package_id} for row in selected
    ]
    if check_mode:
        return summary
    tmp = dest + '.tmp'
    try:
        write_archive(repo, tmp, selected)
        os.replace(tmp, dest)
    except (KeyboardInterrupt, SystemExit):
        cancel_archive(repo, tmp, dest)
        raise
    except Exception as exc:  # pylint: disable=broad-exception-caught  # any failure midway: no partial archive, a clean code
        cause = getattr(exc, 'strerror', None) or str(exc) or type(exc).__name__
        discard_file(tmp)
        repo.log_events([ev.event('archive_save_failed', cause, path=dest)])
        raise RepositoryError('cannot save the archive %s: %s' % (dest, cause), code='archive_save_failed') from None
    repo.log_events([ev.event('archive_saved', path=dest, packages=[row.package_id for row in selected])])
    return summary


def write_archive(repo: Repository, path: str, selected: list[PackageRow]) -> None:
    with zipfile.ZipFile(path, 'w', allowZip64=True) as archive:
        for row in selected:
            archive.write(repo.store.pool_path(row.sha256), 'packages/%s.zip' % row.package_id, compress_type=zipfile.ZIP_STORED)
        archive.writestr('index.html', render_index_html(selected, repo.now_text()), compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr('css/exup.css', INDEX_CSS, compress_type=zipfile.ZIP_DEFLATED)


def cancel_archive(repo: Repository, tmp: str, dest: str) -> None:
    """A save stopped midway (Ctrl-C, a stop): remove the partial archive and log it (003 Tables 18-19)."""
    problem = discard_file(tmp)
    code = 'archive_cancel_failed' if problem else 'archive_cancelled'
    with contextlib.suppress(ExupError, OSError):  # the interrupt goes on; a busy or unwritable log must not replace it
        repo.log_events([ev.event(code, problem, path=dest)])
