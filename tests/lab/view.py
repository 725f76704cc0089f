# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a lab host sees (docs/lab.md "What a host sees"): its own root, read-only system folders, nothing else.

Every ssh session to a lab host runs tests/lab/login.sh (the sshd's ForceCommand for the host's
address): a private mount namespace, the read-only binds of view.conf into the host root, then
chroot. This file prepares a host root to be a machine's / (mount points, /etc basics, home, temp,
the lab's restart script) and writes view.conf. Inside, the host root is "/", so the agent and the
modules run with host_root "/", as on a real server; the controller sees the same files under
lab/hosts/<name>.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LOGIN_SCRIPT = REPO_ROOT / "tests" / "lab" / "login.sh"
REBOOT_SOURCE = REPO_ROOT / "tests" / "lab" / "reboot.sh"

#: root-relative paths of what the lab adds to a host: its restart script and the Python it runs
LAB_DIR = "opt/exup-lab"
REBOOT = LAB_DIR + "/reboot.sh"
PYTHON_DIR = LAB_DIR + "/python"
#: top-level folders a merged-/usr system has as links into /usr; bound read-only when they are folders
TOP_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
#: /etc files a shell, Python and the dynamic loader need; copied, so the host's /etc is its own
ETC_COPIES = ("passwd", "group", "nsswitch.conf", "hosts", "ld.so.cache", "localtime", "alternatives")
#: folders of a host's own (mode): temp folders, root's home, /run
OWN_DIRS = {"tmp": 0o1777, "var/tmp": 0o1777, "root": 0o700, "run": 0o755, "dev": 0o755, "usr": 0o755}


def venv_prefix(interpreter: str) -> Path | None:
    """The virtual environment an interpreter path belongs to (its pyvenv.cfg), else None."""
    prefix = Path(interpreter).parent.parent
    return prefix if (prefix / "pyvenv.cfg").is_file() else None


def base_prefix(venv: Path) -> Path:
    """The installation a venv was made from (pyvenv.cfg home is its bin folder)."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, _sep, value = line.partition("=")
        if key.strip() == "home":
            return Path(value.strip()).parent
    return Path(sys.base_prefix)


def under_usr(path: Path) -> bool:
    return path == Path("/usr") or Path("/usr") in path.parents


class View:
    """The read-only binds every lab host gets, for one interpreter (the repository's .venv or this Python)."""

    def __init__(self, interpreter: str):
        self.source_interpreter = interpreter
        self.venv = venv_prefix(interpreter)
        self.binds: list[tuple[str, str]] = [("/usr", "usr")]
        self.binds += [(f"/{name}", name) for name in TOP_LINKS if os.path.isdir(f"/{name}") and not os.path.islink(f"/{name}")]
        installation = base_prefix(self.venv) if self.venv else Path(sys.base_prefix)
        if not under_usr(installation):  # the Python the venv was made from (pyenv: under /root), at its own path
            self.binds.append((str(installation), str(installation).lstrip("/")))
        if self.venv:  # the venv's site-packages (cryptography, lxml), at a path of the lab's own
            self.binds.append((str(self.venv), PYTHON_DIR))

    @property
    def interpreter(self) -> str:
        """ansible_python_interpreter of a lab host: the path inside its view."""
        if self.venv:
            return "/" + PYTHON_DIR + "/bin/" + Path(self.source_interpreter).name
        return self.source_interpreter

    def prepare(self, root: Path) -> None:
        """Make a host root a machine's /: mount points, links into /usr, /etc basics, own folders, the restart script."""
        for rel, mode in OWN_DIRS.items():
            (root / rel).mkdir(parents=True, exist_ok=True)
            os.chmod(root / rel, mode)
        for name in TOP_LINKS:
            if os.path.islink(f"/{name}"):
                os.symlink(os.readlink(f"/{name}"), root / name)
        for _source, target in self.binds:
            (root / target).mkdir(parents=True, exist_ok=True)
        for name in ETC_COPIES:
            source = Path("/etc") / name
            if source.is_dir() and not source.is_symlink():
                shutil.copytree(source, root / "etc" / name, symlinks=True, dirs_exist_ok=True)
            elif source.exists() or source.is_symlink():
                shutil.copy2(source, root / "etc" / name, follow_symlinks=False)
        (root / REBOOT).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REBOOT_SOURCE, root / REBOOT)

    def write_conf(self, path: Path, stash: Path) -> None:
        """view.conf for login.sh: the binds, /dev, a real /proc (stash: an empty folder login.sh parks a mount on)."""
        stash.mkdir(parents=True, exist_ok=True)
        lines = ["# read by tests/lab/login.sh for every session (docs/lab.md); written by tests/lab/lab.py up"]
        lines += [f"ro {source} {target}" for source, target in self.binds]
        lines += ["dev dev", f"proc {stash}"]
        path.write_text("\n".join(lines) + "\n")

    @staticmethod
    def force_command(root: Path, conf: Path) -> str:
        """What sshd runs for every session to one host."""
        return f"{LOGIN_SCRIPT} {root} {conf}"
