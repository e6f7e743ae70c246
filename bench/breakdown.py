"""Where one ``GET /api/posts/<id>`` goes, in instructions: cost.py's count of the app as
served, then of variants that each leave one part out (``breakdown/``), and of FastAPI and of
flask-greenlet on their own with a constant answer. Differences between rows are the parts.

Usage: ``python bench/breakdown.py`` (PostgreSQL as for cost.py; about three minutes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cost

ENDPOINT = "GET /api/posts/<id>"
VARIANTS = {  # module: what it is, each compared with the row named after it
    cost.OURS: ("the app, as served", None),
    "b_turn_only": ("a connection turn, no statement", cost.OURS),
    "b_ours": ("the read answered from memory", "b_turn_only"),
    "b_no_access_line": ("... and no access line", "b_ours"),
    "b_no_asgi_layers": ("... and no ASGI layers (record, access line, shedding)", "b_ours"),
    "b_no_hooks": ("... and no request hooks", "b_ours"),
    "b_no_view": ("... and a constant view (no @operation, no ETag)", "b_ours"),
    "b_bridge_only": ("flask-greenlet + Flask, a constant async view", None),
    "b_fastapi_only": ("FastAPI, a constant async route", None),
    "b_asgi_only": ("no framework (the driver itself)", None),
}
HERE = Path(__file__).resolve().parent


def main() -> int:
    counted = cost.measure(list(VARIANTS), (ENDPOINT,), import_from=HERE / "breakdown")
    print(render({name: by_endpoint[ENDPOINT] for name, by_endpoint in counted.items()}))
    return 0


def render(counted: dict[str, int]) -> str:
    lines = [
        f"Instructions a request, {ENDPOINT}, in process:",
        "",
        "| variant | instructions | the part left out |",
        "| --- | ---: | ---: |",
    ]
    for name, (what, against) in VARIANTS.items():
        part = f"{counted[against] - counted[name]:,}" if against else ""
        lines.append(f"| {what} (`{name}`) | {counted[name]:,} | {part} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
