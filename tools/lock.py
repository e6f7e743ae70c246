"""Resolve constraints.txt with ``uv pip compile``: every dependency of the app's extras and of
flask-greenlet's groups, together, for Python 3.11.

    python tools/lock.py               # re-resolve, keeping every pin that still fits
    python tools/lock.py --upgrade     # move every pin to the newest that fits
    python tools/lock.py --check       # exit 1 if constraints.txt is not what uv resolves

uv is only the resolver here: the repository keeps pip's files (constraints.txt and the
requirements.txt made from it), never a uv.lock that a buildpack would pick up instead.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / "constraints.txt"
LIBRARY = "flask-greenlet"
HEADER = (
    "# Pinned versions of every dependency (runtime, dev, loadtest and bench extras, and the\n"
    "# flask-greenlet test and bench groups), resolved together by uv pip compile. Regenerate\n"
    "# with make lock (keeps every pin it can), or make lock UPGRADE=--upgrade (moves them all).\n"
)


def compile_into(output: Path, *, upgrade: bool) -> None:
    """Resolve into ``output``; uv prefers the pins the file already holds."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    subprocess.run(
        [
            *(uv, "pip", "compile", "-", "pyproject.toml"),
            *("--extra", "dev", "--extra", "loadtest", "--extra", "bench"),
            *("--group", f"./{LIBRARY}/pyproject.toml:test"),
            *("--group", f"./{LIBRARY}/pyproject.toml:bench"),
            *("--python-version", "3.11", "--no-header", "--no-annotate", "--quiet"),
            *(["--upgrade"] if upgrade else []),
            *("-o", str(output)),
        ],
        input=f"-e ./{LIBRARY}\n",  # the library from its folder, so its name resolves here
        cwd=REPO,
        text=True,
        check=True,
        timeout=300,
    )
    pins = [line for line in output.read_text().splitlines() if not line.startswith("-e ")]
    output.write_text(HEADER + "\n".join(pins) + "\n")


def pins(path: Path) -> list[str]:
    return sorted(line for line in path.read_text().splitlines() if line and line[0] not in "#-")


def main(argv: list[str]) -> int:
    if "--check" in argv:
        with tempfile.TemporaryDirectory() as folder:
            resolved = Path(folder) / "constraints.txt"
            shutil.copy(CONSTRAINTS, resolved)
            compile_into(resolved, upgrade=False)
            if pins(resolved) != pins(CONSTRAINTS):
                print("constraints.txt is not what uv resolves from the pyproject files: make lock")
                return 1
        return 0
    compile_into(CONSTRAINTS, upgrade="--upgrade" in argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
