"""The load-test kit's judgement, without a load: threshold rules and the integrity check."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtest"))

from kit.integrity import Expectation, ObservedPost, check
from kit.server_metrics import compare, parse
from kit.thresholds import (
    BadRule,
    NameStats,
    Rule,
    count_transport_errors,
    judge,
    parse_rules,
)


def stats(name, requests=100, failures=0, p95=100.0, p99=200.0, rps=10.0):
    return NameStats(name, requests, failures, p95 / 2, p95, p99, rps)


def test_rules_are_read_with_an_optional_request_name():
    rules = parse_rules("fail_ratio <= 0.01; p95<300 ;POST /api/posts: p99 < 1000; rps >= 20")
    assert rules == [
        Rule("fail_ratio", "<=", 0.01),
        Rule("p95", "<", 300),
        Rule("p99", "<", 1000, "POST /api/posts"),
        Rule("rps", ">=", 20),
    ]
    assert str(rules[2]) == "POST /api/posts: p99 < 1000 ms"


@pytest.mark.parametrize("text", ["p95 300", "p42 < 3", "GET /: rps > 1", "p95 < fast"])
def test_unreadable_rules_are_refused_with_a_reason(text):
    with pytest.raises(BadRule):
        parse_rules(text)


def test_a_general_latency_rule_holds_for_every_name_and_overall():
    names = [stats("GET /"), stats("POST /auth/login", p95=450)]
    overall = stats("Aggregated", p95=150)
    [outcome] = judge(parse_rules("p95 < 300"), names, overall, 0)
    assert not outcome.passed
    assert "POST /auth/login 450 ms" in outcome.detail and "1 of 3 over" in outcome.detail
    assert outcome.line().startswith("FAIL  p95 < 300 ms")


def test_a_named_rule_replaces_the_general_one_for_its_name():
    names = [stats("GET /"), stats("POST /auth/login", p95=450)]
    rules = parse_rules("p95 < 300; POST /auth/login: p95 < 500")
    outcomes = judge(rules, names, stats("Aggregated"), 0)
    assert [outcome.passed for outcome in outcomes] == [True, True]


def test_a_tolerated_failure_ratio_passes_and_a_higher_one_fails():
    overall = stats("Aggregated", requests=1000, failures=5)
    names = [stats("GET /", requests=1000, failures=5)]
    assert judge(parse_rules("fail_ratio <= 0.01"), names, overall, 0)[0].passed
    assert not judge(parse_rules("fail_ratio <= 0.001"), names, overall, 0)[0].passed


def test_the_request_rate_and_transport_errors_are_judged_for_the_run():
    overall = stats("Aggregated", rps=12.5)
    rps, transport = judge(parse_rules("rps >= 20; transport_errors <= 0"), [], overall, 3)
    assert not rps.passed and "12.5 req/s" in rps.detail
    assert not transport.passed and "3 requests" in transport.detail


def test_a_rule_for_a_name_that_never_ran_fails():
    [outcome] = judge(parse_rules("GET /nowhere: p95 < 100"), [stats("GET /")], stats("x"), 0)
    assert not outcome.passed


def test_timeouts_and_reset_connections_count_as_transport_errors_and_503s_do_not():
    errors = [
        ("ConnectionTimeout('timed out')", 2),
        ("ConnectionResetError(104, 'Connection reset by peer')", 1),
        ("HTTPError('503 Service Unavailable')", 40),
        ("posting answered 503", 7),
    ]
    assert count_transport_errors(errors) == 3


KEY_A, KEY_B, KEY_C = "lt-" + "a" * 16, "lt-" + "b" * 16, "lt-" + "c" * 16


def sent(key, author="demo1", text="hello"):
    return {"kind": "post_sent", "key": key, "author": author, "body": f"[{key}] {text}"}


def ledger(*records):
    return Expectation.from_records([{"kind": "baseline", "post_id": 10}, *records])


def post(post_id, key, author="demo1", text="hello"):
    return ObservedPost(post_id, author, f"[{key}] {text}")


def test_every_acknowledged_post_present_once_with_its_body_passes():
    expectation = ledger(sent(KEY_A), {"kind": "post_acked", "key": KEY_A, "id": 11})
    report = check(expectation, [post(11, KEY_A)])
    assert report.ok and report.present == report.acknowledged == 1


def test_a_lost_write_is_reported():
    expectation = ledger(sent(KEY_A), {"kind": "post_acked", "key": KEY_A, "id": 11})
    report = check(expectation, [])
    assert not report.ok and "acknowledged but is missing" in report.summary()


def test_a_duplicated_or_altered_write_is_reported():
    expectation = ledger(
        sent(KEY_A),
        {"kind": "post_acked", "key": KEY_A, "id": 11},
        sent(KEY_B),
        {"kind": "post_acked", "key": KEY_B, "id": 12},
    )
    report = check(expectation, [post(11, KEY_A), post(13, KEY_A), post(12, KEY_B, text="edited")])
    assert len(report.problems) == 2
    assert "stored 2 times" in report.problems[0] and "differs" in report.problems[1]


def test_a_post_nobody_sent_is_reported():
    expectation = ledger(sent(KEY_A), {"kind": "post_acked", "key": KEY_A, "id": 11})
    observed = [post(11, KEY_A), post(12, KEY_C), ObservedPost(13, "demo1", "no key at all")]
    report = check(expectation, observed)
    assert [p.split(" by ")[0] for p in report.problems] == ["post 12", "post 13"]


def test_other_peoples_posts_on_a_shared_app_are_not_the_kits_business():
    expectation = ledger(sent(KEY_A), {"kind": "post_acked", "key": KEY_A, "id": 11})
    report = check(expectation, [post(11, KEY_A), ObservedPost(12, "a_real_user", "hi all")])
    assert report.ok


def test_an_acknowledged_delete_must_be_gone():
    expectation = ledger(
        sent(KEY_A),
        {"kind": "post_acked", "key": KEY_A, "id": 11},
        {"kind": "delete_sent", "id": 11},
        {"kind": "delete_acked", "id": 11},
    )
    assert check(expectation, []).ok
    report = check(expectation, [post(11, KEY_A)])
    assert "deleted (204) but still exists" in report.summary()


def test_writes_and_deletes_in_flight_at_the_stop_are_counted_apart():
    expectation = ledger(
        sent(KEY_A),
        sent(KEY_B),
        sent(KEY_C),
        {"kind": "post_acked", "key": KEY_C, "id": 12},
        {"kind": "delete_sent", "id": 12},
    )
    report = check(expectation, [post(11, KEY_A), post(12, KEY_C)])
    assert report.ok
    assert (report.writes_unconfirmed, report.writes_unconfirmed_landed) == (2, 1)
    assert report.deletes_unconfirmed == 1 and report.acknowledged == 0


def test_a_ledger_missing_a_workers_records_cannot_pass():
    expectation = ledger({"kind": "missing_workers", "ids": ["worker-2"]})
    assert not check(expectation, []).ok


SCRAPE = """\
microblog_http_requests_total{route="/api/posts",method="GET",status="200"} %(listed)s
microblog_http_requests_total{route="<not routed>",method="GET",status="503"} %(shed)s
microblog_http_request_duration_seconds_bucket{route="/api/posts",le="0.05"} %(fast)s
microblog_http_request_duration_seconds_bucket{route="/api/posts",le="0.5"} %(listed)s
microblog_http_request_duration_seconds_bucket{route="/api/posts",le="+Inf"} %(listed)s
microblog_db_pool_wait_seconds_count %(listed)s
microblog_db_pool_wait_seconds_sum 0.5
microblog_requests_shed_total{reason="overload"} %(shed)s
"""


def scraped(listed, shed, fast):
    return parse(SCRAPE % {"listed": listed, "shed": shed, "fast": fast})


def test_the_server_figures_of_a_run_are_the_difference_of_two_scrapes():
    during = scraped(listed=1100, shed=7, fast=1050).since(scraped(listed=100, shed=2, fast=100))
    assert during.requests == 1000 + 5
    assert during.shed == {"overload": 5}
    assert during.percentile_ms(0.9) == 50  # 950 of 1000 within 50 ms
    assert during.percentile_ms(0.99) == 500


def test_server_and_kit_counts_that_agree_within_the_requests_in_flight_pass():
    during = scraped(listed=1000, shed=0, fast=900)
    agreed = compare(during, sent=995, in_flight=10, transport_errors=0, client_p95=40)
    assert agreed.passed and agreed.lines[-1].startswith("PASS")


def test_requests_the_server_never_counted_fail_the_run():
    during = scraped(listed=900, shed=0, fast=900)
    missing = compare(during, sent=1000, in_flight=10, transport_errors=5, client_p95=40)
    assert not missing.passed and "apart by 100" in missing.lines[-1]
