# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The application log of 003 §2.4 (Tables 18-19): normal and error events.

Error events carry their cause, as the guide's "(cause in parentheses)".
"""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import Index

NORMAL = 'normal'
ERROR = 'error'

#: code -> (level, message). One place for the wording of every event.
EVENTS = {
    'repository_update_started': (NORMAL, 'Repository update started.'),
    'repository_update_finished': (NORMAL, 'Repository update finished.'),
    'repository_update_failed': (ERROR, 'Repository update failed.'),
    'repository_update_cancelled': (NORMAL, 'Repository update cancelled.'),
    'scheduled_download_started': (NORMAL, 'Scheduled download of update packages started.'),
    'scheduled_download_finished': (NORMAL, 'Scheduled download of update packages finished.'),
    'scheduled_download_failed': (ERROR, 'Scheduled download of update packages failed.'),
    'scheduled_download_cancelled': (NORMAL, 'Scheduled download of update packages cancelled.'),
    'packages_arrived': (NORMAL, 'New update packages downloaded.'),
    'webhook_sent': (NORMAL, 'Download notice sent to a webhook.'),
    'webhook_failed': (ERROR, 'Sending the download notice to a webhook failed.'),
    'feed_address_changed': (NORMAL, 'Package source address changed by a redirect.'),
    'upstream_download_finished': (NORMAL, 'Upstream repository downloaded for this repository.'),
    'upstream_download_failed': (ERROR, 'Upstream repository download for this repository failed.'),
    'package_downloaded': (NORMAL, 'Update package downloaded.'),
    'package_refused': (ERROR, 'Update package refused.'),
    'package_removed': (NORMAL, 'Update package removed by generation management.'),
    'package_added': (NORMAL, 'Update package added.'),
    'package_add_failed': (ERROR, 'Adding the update package failed.'),
    'package_deleted': (NORMAL, 'Update package deleted.'),
    'package_delete_failed': (ERROR, 'Deleting the update package failed.'),
    'deletion_history_cleared': (NORMAL, 'Deletion history of update packages cleared.'),
    'archive_saved': (NORMAL, 'Update package archive saved.'),
    'archive_save_failed': (ERROR, 'Saving the update package archive failed.'),
    'manager_registered': (NORMAL, 'Manager presence and managed servers recorded.'),
    'manager_expired': (NORMAL, 'Manager forgotten after two months without presence.'),
    'server_registered': (NORMAL, 'Managed server and the versions it runs recorded.'),
    'server_unregistered': (NORMAL, 'Server no longer managed through the agent.'),
    'versions_queried': (NORMAL, 'Module versions queried.'),
    'versions_query_failed': (ERROR, 'Querying module versions failed.'),
    'apply_started': (NORMAL, 'Applying update packages started.'),
    'apply_finished': (NORMAL, 'Applying update packages finished.'),
    'apply_failed': (ERROR, 'Applying update packages failed.'),
    'apply_cancelled': (NORMAL, 'Applying update packages cancelled.'),
    'uninstall_started': (NORMAL, 'Uninstalling software started.'),
    'uninstall_finished': (NORMAL, 'Uninstalling software finished.'),
    'uninstall_failed': (ERROR, 'Uninstalling software failed.'),
    'agent_install_started': (NORMAL, 'Agent installation started.'),
    'agent_installed': (NORMAL, 'Agent installed.'),
    'agent_install_failed': (ERROR, 'Agent installation failed.'),
    'agent_uninstalled': (NORMAL, 'Agent uninstalled.'),
    'agent_uninstall_failed': (ERROR, 'Agent uninstallation failed.'),
    'agent_logs_collected': (NORMAL, 'Agent logs collected.'),
    'agent_logs_failed': (ERROR, 'Collecting the agent logs failed.'),
    'server_reset': (NORMAL, 'Server or BMC reset through the BMC.'),
    'reset_failed': (ERROR, 'Reset through the BMC failed.'),
    'status_changed': (NORMAL, 'Status of the update package changed.'),
    'settings_read': (NORMAL, 'Repository settings read.'),
    'settings_changed': (NORMAL, 'Repository settings changed.'),
    'settings_read_failed': (ERROR, 'Reading the repository settings failed.'),
    'settings_change_failed': (ERROR, 'Changing the repository settings failed.'),
    'status_change_failed': (ERROR, 'Changing the status of the update package failed.'),
    'reboot_failed': (ERROR, 'Rebooting the managed server failed.'),
    'succeeded_unchanged': (ERROR, 'Update package reported success but the module version did not change.'),
    'progress_unavailable': (ERROR, 'Progress of the update could not be fetched.'),
    'cancel_unavailable': (ERROR, 'Cancelling the update could not be requested.'),
    'version_query_failed': (ERROR, 'Querying the versions of the managed server failed.'),
    'archive_cancelled': (NORMAL, 'Saving the update package archive cancelled.'),
    'archive_cancel_failed': (ERROR, 'Cancelling the save of the update package archive failed.'),
    'refusals_cleared': (NORMAL, 'Refused update packages cleared.'),
    'catalog_version_reset': (NORMAL, 'Catalog version protection reset by the operator.'),
    'store_migrated': (NORMAL, 'Repository store migrated to the current layout.'),
    'store_rebuilt': (NORMAL, 'Repository store rebuilt.'),
    'store_rebuild_needed': (ERROR, 'Repository index lost: package files kept until it is rebuilt.'),
    'store_backed_up': (NORMAL, 'Repository backed up.'),
    'store_restored': (NORMAL, 'Repository restored from a backup.'),
    'remote_batch_started': (NORMAL, 'Remote batch started.'),
    'remote_batch_finished': (NORMAL, 'Remote batch finished.'),
    'remote_batch_failed': (ERROR, 'Remote batch failed.'),
}


def event(code: str, cause: str | None = None, **detail: typing.Any) -> dict[str, typing.Any]:
    """Build an event dict; ``cause`` is appended in parentheses as in Table 19."""
    level, message = EVENTS[code]
    if cause:
        message = '%s (%s)' % (message, cause)
    return {'level': level, 'code': code, 'message': message, 'detail': detail}


#: why a version query could not reach the server, by the path it could not reach (003 Table 19, rows 2-4)
UNREACHABLE = {
    'agent': 'could not connect to the exup agent',
    'bmc': 'could not connect to the management controller',
    'both': 'could not connect to the exup agent nor to the management controller',
}


def version_query_failure(error: str | None, msg: str | None, via: str, agent_reached: bool | None = None) -> tuple[str, str | None, dict[str, typing.Any]]:
    """(code, cause, detail) of a failed version query.

    A query that could not reach the agent (``communication_failed``), the BMC (``bmc_unreachable``) or,
    through the BMC, neither of them (``agent_reached`` False) is ``version_query_failed`` saying which;
    any other failure (refused credentials, an untrusted certificate, a host error) is ``versions_query_failed``.
    """
    if via == 'agent' and error == 'communication_failed':
        reached = 'agent'
    elif via == 'bmc' and error == 'bmc_unreachable':
        reached = 'both' if agent_reached is False else 'bmc'
    else:
        return 'versions_query_failed', msg, {'error': error}
    cause = UNREACHABLE[reached] + (': %s' % msg if msg else '')
    return 'version_query_failed', cause, {'error': error, 'via': reached}


def reboot_failure(boot_id_before: str | None, boot_id_now: str | None) -> tuple[str, str, dict[str, typing.Any]] | None:
    """(code, cause, detail) when a server asked to restart still runs the same boot (003 Table 19), else None."""
    if not boot_id_before or boot_id_now != boot_id_before:
        return None
    return 'reboot_failed', 'the server still runs boot %s: it did not restart' % boot_id_now, {'boot_id': boot_id_now, 'via': 'agent'}


def unchanged_packages(results: typing.Iterable[typing.Mapping[str, typing.Any]], via: str) -> list[tuple[str, str | None, dict[str, typing.Any]]]:
    """13.5: (code, cause, detail) of each package result failed as succeeded but unchanged (``error`` succeeded_unchanged)."""
    return [
        (
            'succeeded_unchanged',
            '%s: %s' % (result.get('package_id'), result.get('cause')),
            {
                'package_id': result.get('package_id'),
                'module_id': result.get('module_id'),
                'version_target': result.get('version_target'),
                'version_after': result.get('version_after'),
                'via': via,
            },
        )
        for result in results
        if result.get('error') == 'succeeded_unchanged'
    ]


def record(index: Index, time_text: str, item: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """Write ``item`` (a dict of ``event``) into the log of ``index`` (a repo.db.Index); returns it with its time."""
    index.add_event(time_text, item['level'], item['code'], item['message'], item['detail'])
    return dict(item, time=time_text)
