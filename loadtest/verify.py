"""Check a saved ledger against the posts that exist, through the API or the database.

    python loadtest/verify.py --ledger loadtest/results/<run>/ledger.jsonl --host http://...
    python loadtest/verify.py --ledger ... --database-url postgresql://...

Exits 0 when every acknowledged post exists exactly once with its body and author, every
acknowledged delete is gone and no post appeared that the kit never sent; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from kit.integrity import Expectation, IntegrityReport, check
from kit.observe import posts_in_database, posts_through_api


def read_ledger(path: Path) -> Expectation:
    with path.open(encoding="utf-8") as file:
        return Expectation.from_records(json.loads(line) for line in file if line.strip())


def verify(
    ledger: Path, *, host: str | None = None, database_url: str | None = None
) -> IntegrityReport:
    expectation = read_ledger(ledger)
    if expectation.baseline is None:
        report = IntegrityReport()
        report.problems.append(f"{ledger} has no baseline: the run never started")
        return report
    if database_url:
        observed = posts_in_database(database_url, expectation.baseline)
    elif host:
        observed = list(posts_through_api(host.rstrip("/"), expectation.baseline))
    else:
        raise ValueError("give a host or a database URL to read the posts from")
    return check(expectation, observed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ledger", type=Path, required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--host", help="read the posts back through this app's API")
    source.add_argument("--database-url", help="read the posts straight from this database")
    args = parser.parse_args()
    report = verify(args.ledger, host=args.host, database_url=args.database_url)
    where = "the database" if args.database_url else "the API"
    print(f"{'PASS' if report.ok else 'FAIL'}  integrity in {where}  ({report.summary()})")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
