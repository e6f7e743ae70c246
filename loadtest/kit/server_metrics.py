"""What the server itself counted during the run, read from its ``/metrics`` before and after.

Beside locust's figures the verdict then shows the server's: requests it answered, its p95,
its waits for a database connection, what it shed and refused. If the server answered a
different number of requests than the kit sent, beyond those in flight at either scrape, a
request went missing on the way (or the kit counted wrong): the run fails.

With several instances behind a load balancer a scrape reaches one of them: the comparison
only holds for one instance (``--server-metrics false`` turns it off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import requests
from prometheus_client.parser import text_string_to_metric_families

TIMEOUT_S = 10
REQUESTS = "microblog_http_requests_total"
LATENCY = "microblog_http_request_duration_seconds_bucket"
POOL_WAIT = "microblog_db_pool_wait_seconds"
SHED = "microblog_requests_shed_total"
LIMITED = "microblog_rate_limited_total"
KIT_OWN_REQUESTS = 1  # the kit's read of the newest post at the start, outside locust's stats


@dataclass
class Figures:
    requests: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound: count at most
    pool_waits: float = 0.0
    pool_wait_seconds: float = 0.0
    shed: dict[str, float] = field(default_factory=dict)
    rate_limited: float = 0.0

    def since(self, before: Figures) -> Figures:
        return Figures(
            requests=self.requests - before.requests,
            buckets={b: n - before.buckets.get(b, 0.0) for b, n in self.buckets.items()},
            pool_waits=self.pool_waits - before.pool_waits,
            pool_wait_seconds=self.pool_wait_seconds - before.pool_wait_seconds,
            shed={r: n - before.shed.get(r, 0.0) for r, n in self.shed.items()},
            rate_limited=self.rate_limited - before.rate_limited,
        )

    def percentile_ms(self, fraction: float) -> float | None:
        """The histogram's estimate: the upper bound of the bucket the fraction falls in."""
        total = self.buckets.get(math.inf, 0.0)
        if not total:
            return None
        for bound in sorted(self.buckets):
            if self.buckets[bound] >= fraction * total:
                return bound * 1000
        return None


def scrape(host: str, token: str) -> Figures | str:
    """The server's figures now, or why they cannot be read."""
    try:
        response = requests.get(
            f"{host}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S
        )
    except requests.RequestException as exc:
        return f"could not reach /metrics ({exc.__class__.__name__})"
    if response.status_code != 200:
        return f"/metrics answered {response.status_code}"
    return parse(response.text)


def parse(text: str) -> Figures:
    figures = Figures()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == REQUESTS:
                figures.requests += value
            elif name == LATENCY:
                bound = float(labels["le"])
                figures.buckets[bound] = figures.buckets.get(bound, 0.0) + value
            elif name == POOL_WAIT + "_count":
                figures.pool_waits += value
            elif name == POOL_WAIT + "_sum":
                figures.pool_wait_seconds += value
            elif name == SHED:
                figures.shed[labels["reason"]] = value
            elif name == LIMITED:
                figures.rate_limited += value
    return figures


@dataclass
class Comparison:
    lines: list[str]
    passed: bool


def compare(
    during: Figures, *, sent: int, in_flight: int, transport_errors: int, client_p95: float
) -> Comparison:
    """The server's figures beside the kit's, and whether their request counts agree."""
    allowed = in_flight + transport_errors + KIT_OWN_REQUESTS
    apart = abs(during.requests - sent)
    server_p95 = during.percentile_ms(0.95)
    mean_wait = during.pool_wait_seconds / during.pool_waits * 1000 if during.pool_waits else 0.0
    shed = ", ".join(f"{reason} {n:.0f}" for reason, n in sorted(during.shed.items())) or "none"
    lines = [
        f"server  requests answered {during.requests:.0f}, p95 <= "
        + (f"{server_p95:.0f} ms" if server_p95 is not None else "n/a")
        + f" (the kit: {sent} sent, p95 {client_p95:.0f} ms)",
        f"server  database connection waits {during.pool_waits:.0f}, mean {mean_wait:.1f} ms; "
        f"shed {shed}; rate-limited {during.rate_limited:.0f}",
    ]
    passed = apart <= allowed
    lines.append(
        f"{'PASS' if passed else 'FAIL'}  server and kit agree on the requests "
        f"(apart by {apart:.0f}, at most {allowed} in flight or lost on the way)"
    )
    return Comparison(lines, passed)
