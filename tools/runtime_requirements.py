"""Write requirements.txt: the app's runtime dependencies, pinned as constraints.txt pins them.

    python tools/runtime_requirements.py            # rewrite requirements.txt
    python tools/runtime_requirements.py --check    # exit 1 if it is out of date

A buildpack (Heroku, Dokku, Scalingo) installs ``requirements.txt`` alone: it holds every
package the app needs at run time (no dev, load-test or bench extras), each at the version
``constraints.txt`` pins, then the libraries that live in this repository (flask-greenlet), and
then the app itself, each built from its folder (not editable).
The runtime closure is read from the installed distributions' metadata, so run it in the
project's virtual environment after ``make install``.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
PROJECT = "microblog"
# Distributions of this repository, by canonical name: installed from their folder, not pinned.
IN_REPOSITORY = {"flask-greenlet": "./flask-greenlet"}
HEADER = (
    "# Generated from constraints.txt by tools/runtime_requirements.py (make requirements.txt);\n"
    "# do not edit. What the app needs at run time, pinned; then the bridge and the app,\n"
    "# each built from its folder.\n"
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    found = (line.split("==") for line in lines if "==" in line and not line.startswith("#"))
    return {canonical(name): f"{name}=={version}" for name, version in found}


def runtime_closure() -> set[str]:
    """Every distribution the project needs at run time on this platform, by canonical name."""
    needed: set[str] = set()
    pending = [(PROJECT, frozenset[str]())]
    while pending:
        name, extras = pending.pop()
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            environment = {"extra": ""}
            wanted = requirement.marker is None or requirement.marker.evaluate(environment)
            wanted = wanted or any(
                requirement.marker.evaluate({"extra": extra}) for extra in extras
            )
            if wanted and canonical(requirement.name) not in needed:
                needed.add(canonical(requirement.name))
                pending.append((requirement.name, frozenset(requirement.extras)))
    return needed


def render() -> str:
    pinned = pins()
    needed = runtime_closure()
    from_pypi = needed - IN_REPOSITORY.keys()
    missing = sorted(from_pypi - pinned.keys())
    if missing:
        raise SystemExit(f"constraints.txt pins no version of {', '.join(missing)}: run make lock")
    lines = sorted((pinned[name] for name in from_pypi), key=lambda line: canonical(line))
    local = [IN_REPOSITORY[name] for name in sorted(needed & IN_REPOSITORY.keys())]
    return HEADER + "\n".join([*lines, *local]) + "\n.\n"


def main() -> int:
    target = REPO / "requirements.txt"
    text = render()
    if "--check" in sys.argv:
        if not target.exists() or target.read_text() != text:
            print("requirements.txt is out of date: run make requirements.txt", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
