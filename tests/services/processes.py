"""The processes the test servers run as: finding programs, a daemon we start, process trees.

Daemon runs a server binary in the foreground in its own process group and stops it with all
its children. process_tree / kill_tree / stop_detached deal with processes that left that group
(sshd sessions call setsid()) or that another process started (the lab's command line).
A server that fails to start raises ServiceError carrying its logs.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 10.0


class ServiceError(RuntimeError):
    """A test server could not be started (the message carries its logs)."""


def find_program(name: str, *candidates: str) -> str:
    """Find a server binary; /usr/sbin is often not on a non-root PATH, so try given paths too."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise ServiceError(f"{name} not found (install it, e.g. with scripts/setup.sh)")


def log_tail(path: Path, limit: int = 20000) -> str:
    """The end of a log file (errors are at the end), or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<{path.name}: {exc.strerror}>"
    return text[-limit:]


def complete_lines(path: Path) -> list[str]:
    """The finished lines of a log that a server may be writing to right now."""
    if not path.exists():
        return []
    return [line for line in path.read_text().split("\n")[:-1] if line.strip()]


def how_it_ended(pid: int) -> str | None:
    """How our child process ended, or None while it runs. Never reaps it (see Daemon.stop)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # already reaped
        return "exited"
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return f"exited with status {info.si_status}"
    return f"was killed by signal {info.si_status}"


class Daemon:
    """A server binary run in the foreground, in its own process group.

    The own group lets stop() also kill the server's children (nginx workers, squid's auth
    helpers) even when the server itself died badly.
    """

    def __init__(self, name: str, argv: list[str], workdir: Path, logs: list[Path]):
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.output_path = workdir / f"{name}.out"
        self.logs = [*logs, self.output_path]
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        """The server's pid; ServiceError before start()."""
        if self.proc is None:
            raise ServiceError(f"{self.name} was not started")
        return self.proc.pid

    def start(self, env: dict[str, str] | None = None) -> None:
        with open(self.output_path, "wb") as output:
            self.proc = subprocess.Popen(  # pylint: disable=consider-using-with  # stop() waits for it
                self.argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )

    def error(self, reason: str) -> ServiceError:
        """A ServiceError that carries every log of the server."""
        parts = [f"{self.name} {reason}", "command: " + " ".join(self.argv)]
        parts += [f"--- {path}:\n{log_tail(path)}" for path in self.logs]
        return ServiceError("\n".join(parts))

    def wait_ready(self, ready, timeout: float = START_TIMEOUT) -> None:
        """Poll ready() until it is true; fail early with the logs if the server exits."""
        deadline = time.monotonic() + timeout
        while True:
            ended = how_it_ended(self.pid)
            if ended:
                raise self.error(f"{ended} during start")
            if ready():
                return
            if time.monotonic() > deadline:
                raise self.error(f"not ready after {timeout} s")
            time.sleep(0.01)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
        """Send sig, give the server grace seconds to exit, then kill its whole process group."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return  # never started, or already reaped: its pid may belong to someone else now
        # The leader is reaped only at the very end: while it exists (even as a zombie) its pid
        # and process group id cannot be reused, so killpg() can only hit our own processes.
        os.kill(proc.pid, sig)
        deadline = time.monotonic() + grace
        while how_it_ended(proc.pid) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time in clock ticks) of a process, None when it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[19])


def process_tree(pid: int) -> dict[int, int]:
    """pid and all its descendants as they are now: pid -> start time (to recognise them later).

    sshd's session processes call setsid(), so a process group kill misses them.
    """
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                table[int(entry.name)] = stat
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in table and current not in found:
            found[current] = table[current][2]
            todo.extend(child for child, stat in table.items() if stat[1] == current)
    return found


def kill_tree(tree: dict[int, int], sig: int = signal.SIGKILL) -> None:
    """Send sig to each process of a process_tree() that is still the same process (same start time)."""
    for pid, started in tree.items():
        stat = _proc_stat(pid)
        if stat is not None and stat[2] == started and stat[0] != "Z":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def detached_running(pid: int, marker: str) -> bool:
    """True when process pid runs and its command line contains marker (a config path: not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    stat = _proc_stat(pid)
    return marker in cmdline and stat is not None and stat[0] != "Z"


def stop_detached(pid: int, marker: str, grace: float = 5.0) -> bool:
    """Stop a server that another process started (e.g. the lab's command line), with its descendants.

    The process's command line must contain marker (its config path), so a reused pid is left
    alone. SIGTERM, up to grace seconds, then SIGKILL for whatever of its tree is left.
    Returns False when it was not running.
    """
    if not detached_running(pid, marker):
        return False
    tree = process_tree(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while detached_running(pid, marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    kill_tree(tree)
    return True
