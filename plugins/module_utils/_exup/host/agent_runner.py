# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's job runner and the on-host file formats it shares with ``agent.py``.

Standard library only: this file is also the agent's executable
(``/opt/exup/agent/bin/exup-agent``, shipped in the update-agent package by
``agentpkg.py``), started detached by ``exup_host`` for each apply job. See
docs/agent.md for the contract (layout, lease, cancel, journal, state).

A started package always runs to its end; before each package the runner
checks the cancel request, then the controller's lease (003 §3.5.1, §4.1).
Each package script runs under ``exup-agent exec``, a small wrapper in a session
of its own: it keeps the script's output bounded and writes its exit status to a
file, so the outcome is known even when the runner itself was killed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
import typing

if typing.TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Mapping
    from typing import Any

AGENT_DIR = 'opt/exup/agent'
STATE_DIR = 'var/lib/exup'
JOURNAL_VERSION = 1
OUTPUT_TAIL = 2000
#: a script's stored output: its first OUTPUT_HEAD bytes, a note of what was dropped, its last OUTPUT_KEEP bytes
OUTPUT_HEAD = 64 * 1024
OUTPUT_KEEP = 960 * 1024
#: bytes start_job sets aside in a job folder; released on a full disk so the runner can still record the outcome
RESERVE_BYTES = 256 * 1024
#: seconds a killed script gets between SIGTERM and SIGKILL of its process group
KILL_GRACE_SECONDS = 5.0
DISK_FULL = 'agent_disk_full'

#: item statuses in a journal (003 Table 8 words in docs)
WAITING, RUNNING, SUCCEEDED, FAILED, CANCELLED = 'waiting', 'running', 'succeeded', 'failed', 'cancelled'
CAUSE_USER = 'cancelled by the user'
CAUSE_LEASE = 'communication with the manager lost'
CAUSE_EARLIER = 'an earlier package failed'
CAUSE_DISK_FULL = "the agent's state folder is full (%s)" % DISK_FULL
#: how a script's end was learned (journal item ``outcome``): by the runner, after the runner died, or by killing it
OUTCOME_RUNNER, OUTCOME_AFTER_RUNNER, OUTCOME_KILLED, OUTCOME_LOST = 'finished', 'finished_after_runner_died', 'killed', 'lost'


class Layout:
    """Paths of the agent below a host root ('/' on a real server)."""

    def __init__(self, root: str = '/') -> None:
        self.root = os.path.abspath(root or '/')

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def env_root(self) -> str:
        """The root as install scripts see it: no trailing slash, empty for '/'."""
        return '' if self.root == '/' else self.root.rstrip('/')

    @property
    def agent_dir(self) -> str:
        return self.path(AGENT_DIR)

    @property
    def runner(self) -> str:
        return self.path(AGENT_DIR, 'bin', 'exup-agent')

    @property
    def state_dir(self) -> str:
        return self.path(STATE_DIR)

    @property
    def state_file(self) -> str:
        return self.path(STATE_DIR, 'state.json')

    @property
    def inbox(self) -> str:
        return self.path(STATE_DIR, 'inbox')

    @property
    def jobs(self) -> str:
        return self.path(STATE_DIR, 'jobs')

    @property
    def log_dir(self) -> str:
        return self.path(STATE_DIR, 'log')

    @property
    def boot_id_file(self) -> str:
        return self.path('proc', 'sys', 'kernel', 'random', 'boot_id')

    def job_dir(self, job_id: str) -> str:
        return os.path.join(self.jobs, job_id)


def now() -> float:
    return time.time()


def disk_full(exc: BaseException) -> bool:
    """An OSError that means no space (or quota) left."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_text_atomic(path: str, text: str) -> None:
    """Atomic replace: a reader sees the old or the new file, never half of one; a failed write leaves no temp file."""
    tmp = '%s.tmp.%d' % (path, os.getpid())
    try:
        with open(tmp, 'w') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: str, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, sort_keys=True, indent=1))


def read_json(path: str, default: Any = None) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


def read_text(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


def boot_id(layout: Layout) -> str:
    return read_text(layout.boot_id_file) or ''


def write_lease(job_dir: str, seconds: float) -> None:
    """The controller is present for ``seconds`` more (written by every poll)."""
    write_text_atomic(os.path.join(job_dir, 'lease'), '%.3f\n' % (now() + seconds))


def lease_expired(job_dir: str) -> bool:
    text = read_text(os.path.join(job_dir, 'lease'))
    try:
        return now() > float(text)  # type: ignore[arg-type]  # None (no lease): TypeError, caught
    except (TypeError, ValueError):
        return True


def cancel_requested(job_dir: str) -> bool:
    return os.path.exists(os.path.join(job_dir, 'cancel'))


def log(layout: Layout, message: str) -> None:
    """Best effort: a full disk must not stop a job because its log line cannot be written."""
    try:
        os.makedirs(layout.log_dir, exist_ok=True)
        with open(os.path.join(layout.log_dir, 'agent.log'), 'a') as handle:
            handle.write('%s %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), message))
    except OSError:
        pass


def load_state(layout: Layout) -> dict[str, Any]:
    state = read_json(layout.state_file, {}) or {}
    state.setdefault('modules', {})
    return state


def module_changes(item: dict[str, Any], boot_id: str = '') -> dict[str, Any]:
    """What a finished item changes in its module's record: one rule for the runner (state.json) and the BMC path (bmc_modules).

    A success keeps the version it replaced as the previous generation (not when the same version is applied
    again, 003 §2.1.1.2) and, when it needs a restart, blocks the module with the new version staged. A failure
    blocks it as apply_failed (on the BMC path only one that may have left the firmware half written: ``blocks``).
    ``boot_id``: the boot the block is set in (agent path). Pure, and standard library only (see the file's doc).
    """
    changes: dict[str, Any] = {}
    if item['status'] == SUCCEEDED:
        if item['action'] == 'install' and item.get('from_version') and item['from_version'] != item.get('to_version'):
            changes['previous'] = item['from_version']
        if item['reboot_required']:
            changes.update(block='reboot_required', boot_id=boot_id, staged=item.get('to_version'), action=item['action'], package_id=item['package_id'])
    elif item['status'] == FAILED and item.get('blocks', True):
        changes.update(block='apply_failed', boot_id=boot_id, staged=None, cause=item.get('cause', ''), package_id=item['package_id'])
    return changes


def item_in_state(state: dict[str, Any], item: dict[str, Any], current_boot: str) -> dict[str, Any]:
    """``module_changes`` of a finished item applied to ``state`` in memory."""
    state['modules'].setdefault(item['module_id'], {}).update(module_changes(item, current_boot))
    return state


def record_item_in_state(layout: Layout, item: dict[str, Any], current_boot: str) -> None:
    write_json(layout.state_file, item_in_state(load_state(layout), item, current_boot))


def _finish_rest(journal: dict[str, Any], start: int, cause: str) -> None:
    for item in journal['items'][start:]:
        if item['status'] == WAITING:
            item.update(status=CANCELLED, cause=cause, finished=now())


def script_env(layout: Layout, action: str, module_id: str, version: str | None, package_id: str | None = '') -> dict[str, str]:
    """The environment a package script runs with (docs/agent.md, "How a package runs")."""
    return dict(
        os.environ,
        EXUP_ROOT=layout.env_root,
        EXUP_ACTION=action,
        EXUP_MODULE=module_id,
        EXUP_VERSION=version or '',
        EXUP_PACKAGE_ID=package_id or '',
        EXUP_AGENT_DIR=layout.agent_dir,
    )


# ---------------------------------------------------------------------------- processes
def process_start(pid: int) -> int | None:
    """Start time of a process (clock ticks since boot, /proc/<pid>/stat field 22); None when it cannot be read.

    With the pid it names one process for good: a pid reused by a later process has another start time.
    """
    try:
        with open('/proc/%d/stat' % pid) as handle:
            text = handle.read()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(')') + 2 :].split()  # the name in parentheses may hold spaces
    if fields[0] in ('Z', 'X'):
        return -1  # a zombie or dead task: finished, only not reaped yet
    return int(fields[19])


def process_alive(pid: int | None, start: int | None = None) -> bool:
    """Whether the process ``pid`` that started at ``start`` (see process_start) still runs."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    seen = process_start(pid)
    if seen == -1:
        return False
    return start is None or seen is None or seen == start


def group_alive(pgid: int | None, start: int | None = None) -> bool:
    """Whether a process of the group ``pgid`` (led by the process that started at ``start``) still runs.

    The script's own children count: a script whose wrapper died while its children work on is not done.
    Zombies do not count. Without /proc, any member that signal 0 reaches counts.
    """
    if not pgid:
        return False
    try:
        names = os.listdir('/proc')
    except OSError:
        names = None
    if not names or not os.path.exists('/proc/self/stat'):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    return any(name.isdigit() and _member(int(name), pgid, start) for name in names)


def _member(pid: int, pgid: int, start: int | None) -> bool:
    """A live process of group ``pgid`` that started no earlier than its leader did (older ones belong to an earlier group of that id)."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            text = handle.read()
    except (OSError, ValueError):
        return False
    fields = text[text.rindex(')') + 2 :].split()
    return fields[0] not in ('Z', 'X') and int(fields[2]) == pgid and (start is None or int(fields[19]) >= start)


def stop_process_group(pgid: int, start: int | None, grace: float | None = None) -> bool:
    """SIGTERM the group, SIGKILL it after ``grace`` seconds; True once none of it runs (deadline: grace + 5 s)."""
    grace = KILL_GRACE_SECONDS if grace is None else grace
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not group_alive(pgid, start):
            return True
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(pgid, start):
            time.sleep(0.05)
    return not group_alive(pgid, start)


# ---------------------------------------------------------------------------- bounded output
class BoundedOutput:
    """A script's output on disk: the first ``head`` bytes as they come, the last ``keep`` bytes at the end.

    What lies between is dropped and counted (a note says how many bytes); memory holds at most ``keep``
    bytes. A write that fails (full disk) is dropped too, and the script keeps running.
    """

    def __init__(self, path: str, head: int | None = None, keep: int | None = None) -> None:
        self.head, self.keep = OUTPUT_HEAD if head is None else head, OUTPUT_KEEP if keep is None else keep
        self.written = self.total = 0
        self.tail = bytearray()
        self.handle: typing.BinaryIO | None
        try:
            self.handle = open(path, 'wb')  # noqa: SIM115  # kept open while the script writes; close() ends it
        except OSError:
            self.handle = None

    def _write(self, data: bytes) -> None:
        if self.handle is not None and data:
            try:
                self.handle.write(data)
                self.handle.flush()
            except OSError:
                self.handle = None

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if self.written < self.head:
            first = data[: self.head - self.written]
            self._write(first)
            self.written += len(first)
            data = data[len(first) :]
        self.tail += data
        if len(self.tail) > self.keep:
            del self.tail[: len(self.tail) - self.keep]

    @property
    def dropped(self) -> int:
        return self.total - self.written - len(self.tail)

    def close(self) -> None:
        if self.dropped:
            self._write(b'\n[exup: %d bytes of output dropped here]\n' % self.dropped)
        self._write(bytes(self.tail))
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.close()


def read_tail(path: str, size: int = OUTPUT_TAIL) -> str:
    """The last ``size`` characters of a file, read from its end (a log may be large)."""
    try:
        with open(path, 'rb') as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode('utf-8', 'replace').strip()[-size:]
    except OSError:
        return ''


def run_bounded(command: str, cwd: str, env: Mapping[str, str], output_path: str) -> int:
    """Run ``/bin/sh -c command`` in ``cwd`` with its output kept by BoundedOutput; return its exit status."""
    output = BoundedOutput(output_path)
    try:
        # Standard library only (this file is the agent's executable): no AnsibleModule.run_command here.
        proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
            ['/bin/sh', '-c', command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except OSError as exc:
        output.feed(('cannot run the command: %s\n' % exc).encode())
        output.close()
        return 127
    with proc.stdout:  # type: ignore[union-attr]  # stdout=PIPE: never None
        for chunk in iter(lambda: proc.stdout.read(65536), b''):  # type: ignore[union-attr]
            output.feed(chunk)
    code = proc.wait()
    output.close()
    return code if code >= 0 else 128 - code


def exec_script(status_path: str, output_path: str, work: str, command: str) -> int:
    """``exup-agent exec``: run one package script and write its exit status to ``status_path``.

    The runner starts this in a session of its own (its process group is the script's), and records
    its pid and start time in the journal: if the runner dies, the script runs on, and its outcome is
    still written here for the agent to read.
    """
    code = run_bounded(command, work, os.environ, output_path)
    with contextlib.suppress(OSError):  # full disk: the runner, if alive, still gets the exit status from this process
        write_json(status_path, {'exit_code': code, 'finished': now()})
    return code


def read_status(job_dir: str, index: int) -> dict[str, Any] | None:
    """The exit status the wrapper of item ``index`` wrote (None: not written, or not finished)."""
    try:
        status = read_json(os.path.join(job_dir, 'output', '%d.status' % index))
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) and isinstance(status.get('exit_code'), int) else None


# ---------------------------------------------------------------------------- the job
def finish_item(item: dict[str, Any], code: int, tail: str, outcome: str) -> dict[str, Any]:
    """Set an item's result from its script's exit status."""
    item.update(exit_code=code, output_tail=tail, finished=now(), outcome=outcome)
    if code == 0:
        item['status'] = SUCCEEDED
    else:
        item.update(status=FAILED, cause='exit status %d: %s' % (code, tail.splitlines()[-1] if tail else 'no output'))
    return item


class Job:
    """One job's journal on disk; a full disk releases the job's reserve once so the outcome is still recorded."""

    def __init__(self, layout: Layout, job_id: str) -> None:
        self.layout = layout
        self.job_id = job_id
        self.dir = layout.job_dir(job_id)
        self.path = os.path.join(self.dir, 'journal.json')
        self.journal = read_json(self.path)
        self.disk_full = False

    def _retry_on_full_disk(self, write: Callable[[], None]) -> None:
        try:
            write()
        except OSError as exc:
            reserve = os.path.join(self.dir, 'reserve')
            if not disk_full(exc) or not os.path.exists(reserve):
                raise
            self.disk_full = True
            self.journal['error'] = DISK_FULL
            os.unlink(reserve)
            log(self.layout, 'job %s: the state folder is full (%s); the reserve was released to record the outcome' % (self.job_id, exc))
            write()

    def save(self) -> None:
        self._retry_on_full_disk(lambda: write_json(self.path, self.journal))

    def record(self, item: dict[str, Any], current_boot: str) -> None:
        self._retry_on_full_disk(lambda: record_item_in_state(self.layout, item, current_boot))

    def run_item(self, index: int, item: dict[str, Any]) -> tuple[int, str]:
        """Start the item's script under the wrapper, record its process, wait for it; return (exit status, tail)."""
        work = os.path.join(self.dir, 'work', str(index))
        os.makedirs(os.path.join(self.dir, 'output'), exist_ok=True)
        output_path = os.path.join(self.dir, 'output', '%d.log' % index)
        status_path = os.path.join(self.dir, 'output', '%d.status' % index)
        env = script_env(self.layout, item['action'], item['module_id'], item['to_version'] or item.get('from_version'), item['package_id'])
        # A detached wrapper in its own session: the script outlives a killed runner and can be stopped as a group.
        try:
            proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    'exec',
                    status_path,
                    output_path,
                    work,
                    item['command'],
                ],
                cwd='/',
                env=env,
                stdin=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            return 127, 'cannot run the command: %s' % exc
        item.update(script_pid=proc.pid, script_start=process_start(proc.pid))
        self.save()
        code = proc.wait()
        status = read_status(self.dir, index)
        return (status['exit_code'] if status else code if code >= 0 else 128 - code), read_tail(output_path)


def run_job(layout: Layout, job_id: str) -> dict[str, Any]:
    """Run every item of a job in order; the journal tells the manager how it went."""
    job = Job(layout, job_id)
    journal = job.journal
    journal.update(state='running', runner_pid=os.getpid(), runner_start=process_start(os.getpid()), started=now())
    job.save()
    current_boot = boot_id(layout)
    log(layout, 'job %s started with %d package(s)' % (job_id, len(journal['items'])))
    for index, item in enumerate(journal['items']):
        if item['status'] != WAITING:
            continue
        cause = CAUSE_DISK_FULL if job.disk_full else CAUSE_USER if cancel_requested(job.dir) else CAUSE_LEASE if lease_expired(job.dir) else None
        if cause:
            _finish_rest(journal, index, cause)
            log(layout, 'job %s: %s; the remaining packages are cancelled' % (job_id, cause))
            break
        item.update(status=RUNNING, started=now())
        job.save()
        if job.disk_full:  # the reserve went into this write: start nothing more
            item.update(status=WAITING)
            item.pop('started')
            _finish_rest(journal, index, CAUSE_DISK_FULL)
            log(layout, 'job %s: %s; the remaining packages are cancelled' % (job_id, CAUSE_DISK_FULL))
            break
        log(layout, 'job %s: %s %s %s started' % (job_id, item['action'], item['package_id'], item['to_version']))
        code, tail = job.run_item(index, item)
        finish_item(item, code, tail, OUTCOME_RUNNER)
        job.record(item, current_boot)
        log(layout, 'job %s: %s %s %s (%s)' % (job_id, item['action'], item['package_id'], item['status'], item.get('cause', 'ok')))
        if item['status'] == FAILED:
            _finish_rest(journal, index + 1, CAUSE_EARLIER)
            job.save()
            break
        job.save()
    journal.update(state='finished', finished=now())
    job.save()
    log(layout, 'job %s finished' % job_id)
    return journal


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 5 and argv[0] == 'exec':
        return exec_script(*argv[1:])
    if len(argv) != 4 or argv[0] != 'run' or argv[1] != '--root':
        sys.stderr.write('usage: exup-agent run --root ROOT JOB_ID\n       exup-agent exec STATUS_FILE OUTPUT_FILE WORK_DIR COMMAND\n')
        return 2
    try:
        run_job(Layout(argv[2]), argv[3])
    except OSError as exc:
        # Even the reserve did not suffice: the journal on disk stays as it was, and the agent reads the job as one whose runner died.
        sys.stderr.write('exup-agent: job %s stopped: %s\n' % (argv[3], exc))
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
