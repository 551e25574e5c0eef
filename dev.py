#!/usr/bin/env python3
"""Developer entry point. Standard library only: it works on a fresh machine with Python 3.11+.

    python3 dev.py run [args...]     start the embedded exchange with demo markets (cambist serve --demo)
    python3 dev.py test [--skip-lint] [pytest args...]
                                     ruff, mypy (strict on the core), then pytest; non-zero if any step fails

Both create ``.venv`` when it is missing and install the project into it in editable mode with the
``dev`` extra when ``pyproject.toml`` changed since the last install (a hash kept in
``.venv/.cambist-installed``), or when the installed package does not import from this tree.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".cambist-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
DEV_TOOLS = ("ruff", "mypy", "pytest")
LINT_PATHS = ("src", "tests", "bench")
USAGE = "usage: python3 dev.py run [args...] | python3 dev.py test [--skip-lint] [pytest args...]"


def say(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    return str(BIN / (name + ".exe" if os.name == "nt" else name))


def wanted_stamp() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    # A new interpreter (the venv rebuilt on another Python) also needs a reinstall.
    digest.update(sys.version.encode())
    return digest.hexdigest()


def installed_ok() -> bool:
    """The stamp matches and cambist imports from this tree, with the dev tools present."""
    if not STAMP.is_file() or STAMP.read_text().strip() != wanted_stamp():
        return False
    if not all(Path(tool(name)).exists() for name in DEV_TOOLS):
        return False
    probe = subprocess.run(
        [str(PYTHON), "-c", "import cambist, sys; sys.stdout.write(cambist.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return False
    return Path(probe.stdout.strip()).resolve().is_relative_to(ROOT / "src")


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must explain itself on an old Python
        sys.exit(f"dev.py: Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        say(f"creating virtual environment {VENV}")
        created = subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=False)
        if created.returncode != 0:
            sys.exit("dev.py: 'python3 -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)")
    if installed_ok():
        return
    STAMP.unlink(missing_ok=True)
    say("installing cambist and its dev tools into .venv (pip install -e '.[dev]'), this takes a minute")
    result = subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[dev]"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        sys.exit(f"dev.py: pip install failed with exit code {result.returncode}")
    STAMP.write_text(wanted_stamp() + "\n")
    if not installed_ok():
        sys.exit("dev.py: cambist was installed but does not import from src/; see the output above")


def tool_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONHOME", None)
    return env


def run(args: list[str]) -> None:
    command = [tool("cambist"), "serve", "--demo", *args]
    say(" ".join(["cambist", *command[1:]]))
    os.chdir(ROOT)
    if os.name == "nt":
        sys.exit(subprocess.run(command, env=tool_environment(), check=False).returncode)
    os.execve(command[0], command, tool_environment())


def test(args: list[str]) -> int:
    skip_lint = "--skip-lint" in args
    pytest_args = [arg for arg in args if arg != "--skip-lint"]
    steps: list[tuple[str, list[str]]] = []
    if not skip_lint:
        lint_paths = [path for path in LINT_PATHS if (ROOT / path).exists()]
        steps.append(("ruff", [tool("ruff"), "check", *lint_paths]))
        steps.append(("mypy", [tool("mypy"), "src/cambist"]))
    steps.append(("pytest", [tool("pytest"), *pytest_args]))

    env = tool_environment()
    failed: list[str] = []
    first_code = 0
    for name, command in steps:
        print(f"==> {' '.join([name, *command[1:]])}", flush=True)
        code = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        if code != 0:
            say(f"step '{name}' failed with exit code {code}")
            failed.append(name)
            first_code = first_code or code
    if failed:
        say(f"FAILED steps: {', '.join(failed)}")
    return first_code


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test"):
        print(USAGE, file=sys.stderr)
        return 2
    ensure_environment()
    if argv[0] == "run":
        run(argv[1:])
        return 0
    return test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
