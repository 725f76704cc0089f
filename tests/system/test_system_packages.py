"""bindep.txt is the one list of system packages: everything the code starts must come from it (issue 8 item 1).

The programs started are found by reading the code, not by a list kept beside it:
  - Python (tests/, benchmarks/, plugins/): find_program("x"), squid_helper("x"), shutil.which("x"), program("x"),
    and subprocess calls or argv lists whose first element is a literal name;
  - playbooks, roles and playbooks embedded in Python: the first word of command/shell/raw tasks;
  - shell scripts (scripts/, tests/): the words in command position.
Each must be provided by a package of bindep.txt's test profile (its "# programs:" line) or live in the venv
(Python requirements). On this machine `dpkg -S` must confirm that the package really holds the program.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LIB_SH = REPO_ROOT / "scripts" / "lib.sh"
SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/lib/squid", "/usr/lib64/squid", "/usr/libexec/squid", "/usr/lib/openssh"]
)

#: programs the code may start that no package of the list can provide, and why
NOT_INSTALLABLE = {
    "pyenv": "one of the places setup.sh looks for a Python >= 3.12 (an alternative to python3.13 on PATH)",
}
#: Python calls whose first argument (a literal) names a program
FINDERS = {"find_program", "squid_helper", "which", "program"}
#: Python calls whose first argument is an argv
RUNNERS = {"run", "Popen", "check_call", "check_output", "call", "execvp", "execv"}
#: a command/shell/raw task and its first word; in Python (embedded playbooks) only with the ansible.builtin. prefix
TASK_COMMAND = {
    ".py": re.compile(r"\bansible\.builtin\.(?:command|shell|raw):\s*['\"]?([A-Za-z0-9_./-]+)"),
    ".yml": re.compile(r"^\s*(?:-\s+)?(?:ansible\.builtin\.)?(?:command|shell|raw):\s*['\"]?([A-Za-z0-9_./-]+)"),
}
#: the words a shell runs itself (a task's first word that needs no package)
SHELL_BUILTIN_WORDS = """! [ [[ ]] { } ( ) case esac do done elif else fi for function if in then until while alias break cd continue
declare echo eval exec exit export false getopts hash local mapfile printf pwd read readonly return set shift source
test trap true type ulimit umask unset wait . : command let shopt kill Q"""
SHELL_BUILTINS = set(SHELL_BUILTIN_WORDS.split())
#: shell words that run the next words as a command (after options and assignments). sudo is not a package of
#: the list: as_root uses it only for a user who is not root, and such a user needs it before anything is installed.
SHELL_WRAPPERS = {"env", "exec", "sudo", "as_root", "timeout", "nice", "xargs", "command"}
SHELL_STEP_WRAPPERS = {"step", "run_step"}  # LABEL CMD...


def declared(bindep=None) -> dict:
    """program -> package, from bindep.txt's test profile as scripts/lib.sh reads it (the same parser as setup.sh)."""
    env = dict(os.environ, EXUP_BINDEP=str(bindep)) if bindep else None
    out = subprocess.run(["bash", "-c", f". '{LIB_SH}' && bindep_entries test"], capture_output=True, text=True, timeout=60, check=True, env=env)
    mapping = {}
    for line in out.stdout.splitlines():
        package, _tab, programs = line.partition("\t")
        mapping.update({program: package for program in programs.split()})
    return mapping


# --------------------------------------------------------------------------- scanning the code
def _files(patterns, roots=("tests", "scripts", "benchmarks", "plugins", "playbooks", "roles")):
    for root in roots:
        for pattern in patterns:
            for path in sorted((REPO_ROOT / root).rglob(pattern)):
                if "output" not in path.relative_to(REPO_ROOT).parts:
                    yield path


def _call_name(node) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _literal_name(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"/?[A-Za-z0-9_.+/-]+", node.value):
        return os.path.basename(node.value)
    return None


def _argv_head(node):
    """The program of an argv list/tuple literal, if its first element is a literal name."""
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        return _literal_name(node.elts[0])
    return None


def _runs_argv(name, first) -> bool:
    """A call that starts its first argument: a known runner (run, _timed_run ...), or any helper given an argv
    with options (["nginx", "-v"]) other than an entry point's own arguments (main, parse_args)."""
    if name in RUNNERS or name.endswith("run"):
        return True
    options = isinstance(first, ast.List) and len(first.elts) > 1 and isinstance(first.elts[1], ast.Constant)
    return options and str(first.elts[1].value).startswith("-") and name not in ("main", "parse_args")


def python_programs(path: Path) -> list:
    """[(program, line)] started by one Python file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and node.args:
            name = _call_name(node)
            program = _literal_name(node.args[0]) if name in FINDERS else _argv_head(node.args[0]) if _runs_argv(name, node.args[0]) else None
            if program:
                found.append((program, node.lineno))
        elif isinstance(node, ast.Assign) and any(re.search(r"argv|cmd|command", getattr(t, "id", "")) for t in node.targets):
            found += [(_argv_head(node.value), node.lineno)] if _argv_head(node.value) else []  # argv = ["ssh", ...]
        elif isinstance(node, ast.FunctionDef) and re.search(r"argv|command", node.name):
            returns = [n.value for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None]
            found += [(_argv_head(value), value.lineno) for value in returns if _argv_head(value)]
    return found


def task_programs(path: Path) -> list:
    """[(program, line)] of command/shell/raw tasks in YAML, or in playbooks embedded in Python strings."""
    found = []
    pattern = TASK_COMMAND[".py" if path.suffix == ".py" else ".yml"]
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for match in pattern.finditer(line):
            if not match.group(1).startswith("{"):
                found.append((os.path.basename(match.group(1)), number))
    return found


def _shell_code(text: str) -> str:
    """The shell text with quoted strings, comments and here-documents blanked (a quoted string becomes the word Q);
    command substitutions inside double quotes are kept, as commands. Line breaks stay where they were."""
    text = re.sub(r"\$\(\(.*?\)\)", "Q", text)  # arithmetic holds no commands
    out, stack, i, heredocs = [], ["code"], 0, []
    while i < len(text):
        char, state = text[i], stack[-1]
        if state == "'":
            stack.pop() if char == "'" else None
            out.append("\n" if char == "\n" else "")
        elif state == '"':
            if char == "\\":
                i += 1
            elif text.startswith("$(", i):
                stack.append("code")
                out.append(" ; ")
                i += 1
            elif char == '"':
                stack.pop()
                out.append("Q")
            else:
                out.append("\n" if char == "\n" else "")
        elif char in "'\"":
            stack.append(char)
        elif char == ")" and len(stack) > 1:
            stack.pop()
            out.append(" ; ")
        elif char == "#" and (not out or out[-1][-1:] in (" ", "\t", "\n", ";")):
            i = text.find("\n", i) - 1 if "\n" in text[i:] else len(text)
        elif text.startswith("<<", i) and (marker := re.match(r"<<-?\s*['\"]?(\w+)['\"]?", text[i:])):
            heredocs.append(marker.group(1))
            i += marker.end() - 1
        elif char == "\n" and heredocs:
            end = re.search(r"^\s*%s\s*$" % re.escape(heredocs.pop()), text[i + 1 :], re.M)
            skipped = text[i : i + 1 + (end.end() if end else len(text))]
            out.append("\n" * skipped.count("\n"))
            i += len(skipped) - 1
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _command_word(words, functions):
    """The program a simple command starts, or None (builtin, function, variable, assignment)."""
    while words:
        word = words.pop(0)
        if re.fullmatch(r"\w+=.*", word) or word.startswith("-"):
            continue
        if word in SHELL_STEP_WRAPPERS:
            words = words[1:]
            continue
        if word in SHELL_WRAPPERS:
            if word == "command" and words[:1] == ["-v"]:
                return None  # a probe for an optional program, not a start
            continue
        if word in SHELL_BUILTINS or word in functions or not re.fullmatch(r"[A-Za-z0-9_./][A-Za-z0-9_./+-]*", word):
            return None
        return os.path.basename(word)
    return None


def shell_programs(path: Path, functions: set) -> list:
    found = []
    for number, code in enumerate(_shell_code(path.read_text()).splitlines(), 1):
        code = re.sub(r"^\s*[^\s()]+\)", "", code)  # a case pattern: "a|b*)"
        code = re.sub(r"\w+=\([^)]*\)", " ", code)  # an array assignment
        code = re.sub(r"\d*(?:&>|[<>]+&?)\s*[^\s;|&()]*", " ", code)  # a redirection and its target
        for part in re.split(r"\|\||&&|[;|&(){}`]|\$\(|\b(?:then|do|else|elif|if|while|until)\b", code):
            program = _command_word(part.split(), functions)
            if program:
                found.append((program, number))
    return found


def started_programs() -> dict:
    """program -> ["file:line", ...] of every place the code starts it."""
    shells = list(_files(["*.sh"]))
    functions = {name for path in shells for name in re.findall(r"^\s*(?:function\s+)?([\w-]+)\s*\(\)", path.read_text(), re.M)}
    places: dict[str, list[str]] = {}
    sources = [(path, python_programs(path) + task_programs(path)) for path in _files(["*.py"])]
    sources += [(path, task_programs(path)) for path in _files(["*.yml", "*.yaml"])]
    sources += [(path, shell_programs(path, functions)) for path in shells]
    for path, programs in sources:
        for program, number in programs:
            places.setdefault(program, []).append(f"{path.relative_to(REPO_ROOT)}:{number}")
    return places


def from_python_requirements(program: str) -> bool:
    """True for programs the venv provides (requirements*.txt), e.g. ansible-playbook, pytest."""
    return program.startswith("python") or (Path(sys.executable).parent / program).exists()


def uncovered(places: dict, mapping: dict) -> dict:
    return {
        program: where
        for program, where in sorted(places.items())
        if program not in mapping and program not in NOT_INSTALLABLE and not from_python_requirements(program)
    }


# --------------------------------------------------------------------------- dpkg
def _candidate_paths(program: str) -> set:
    """Where the program is on this machine: its path, the real path, and their usr-merge aliases (/bin <-> /usr/bin)."""
    found = shutil.which(program, path=SEARCH_PATH)
    if not found:
        return set()
    candidates = {found, os.path.realpath(found)}
    for path in list(candidates):
        for merged, plain in (("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/")):
            candidates |= {path.replace(merged, plain, 1), path.replace(plain, merged, 1)}
    return candidates


def dpkg_owners(programs) -> dict:
    """program -> the packages that own its file on this machine (one dpkg -S for all)."""
    paths = {program: _candidate_paths(program) for program in programs}
    wanted = sorted(set().union(*paths.values()))
    out = subprocess.run(["dpkg", "-S"] + wanted, capture_output=True, text=True, timeout=120, check=False).stdout if wanted else ""
    owners_of: dict[str, set[str]] = {}
    for line in out.splitlines():
        if not line.startswith("diversion") and ": " in line:
            names, path = line.split(": ", 1)
            owners_of.setdefault(path.strip(), set()).update(name.strip().split(":")[0] for name in names.split(","))
    return {program: set().union(*(owners_of.get(path, set()) for path in found)) for program, found in paths.items()}


# --------------------------------------------------------------------------- tests
def test_every_program_started_comes_from_bindep():
    places = started_programs()
    assert {"htpasswd", "nginx", "squid", "sshd", "ipmitool", "curl", "shellcheck", "sh", "aria2c"} <= set(places), sorted(places)
    missing = uncovered(places, declared())
    assert not missing, (
        "programs started by the code that no package of bindep.txt (profile test) provides; "
        "add a '# programs:' line and the package there:\n" + "\n".join(f"  {p}: {', '.join(w[:3])}" for p, w in missing.items())
    )


def test_without_apache2_utils_htpasswd_is_uncovered(tmp_path):
    """The check above is not vacuous: the list as it was before issue 8 (no apache2-utils) fails it."""
    text = (REPO_ROOT / "bindep.txt").read_text()
    assert "\napache2-utils " in text
    trimmed = tmp_path / "bindep.txt"
    trimmed.write_text(text.replace("\napache2-utils ", "\n# apache2-utils "))
    mapping = declared(trimmed)
    assert "htpasswd" not in mapping and "nginx" in mapping
    missing = uncovered(started_programs(), mapping)
    assert list(missing) == ["htpasswd"] and any(place.startswith("tests/services/squid.py:") for place in missing["htpasswd"])


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg -S needs a dpkg system")
def test_each_package_really_provides_its_programs():
    wrong = {}
    mapping = declared()
    owners_of = dpkg_owners(mapping)
    for program, package in sorted(mapping.items()):
        owners = owners_of[program]
        if package not in owners:
            wrong[program] = f"bindep.txt says {package}, dpkg -S says {sorted(owners) or 'not installed (run scripts/setup.sh)'}"
    assert not wrong, wrong


def test_bindep_selectors_follow_bindep_rules():
    """Profiles and platforms as bindep reads them: the compile profile is not installed for the tests,
    an entry without a profile belongs to every profile, a negated selector excludes."""

    def chosen(selectors, profiles="test", platforms="dpkg debian"):
        script = f". '{LIB_SH}' && bindep_selected '{selectors}' '{profiles}' '{platforms}'"
        return subprocess.run(["bash", "-c", script], timeout=30, check=False).returncode == 0

    assert chosen("platform:dpkg test") and chosen("") and chosen("platform:dpkg platform:rpm")
    assert not chosen("platform:dpkg compile") and not chosen("platform:rpm test")
    assert not chosen("test !platform:debian") and chosen("!compile")
    mapping = declared()
    assert mapping["htpasswd"] == "apache2-utils" and "gcc" not in mapping.values()
