"""Policies that walk the route map, so that a new route cannot slip past them."""

import pytest

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
SAMPLE_ARGUMENTS = {"post_id": 1}
# Writes that create an identity rather than act as one.
API_WRITES_WITHOUT_BEARER = {"api.register": None, "api.create_token": "basic"}


def routes(app, *, api: bool):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") == api and rule.endpoint != "static":
            yield rule


def test_every_api_write_needs_a_bearer_token(app):
    for rule in routes(app, api=True):
        if rule.methods & WRITE_METHODS:
            contract = app.view_functions[rule.endpoint].operation
            expected = API_WRITES_WITHOUT_BEARER.get(rule.endpoint, "bearer")
            assert contract.auth == expected, f"{rule.endpoint} writes with auth={contract.auth}"


def test_every_api_route_declares_a_contract(app):
    for rule in routes(app, api=True):
        if rule.endpoint not in (
            "api.openapi_document",
            "api.api_docs",
        ):  # the document, its reader
            assert hasattr(app.view_functions[rule.endpoint], "operation"), rule.endpoint


async def test_every_page_form_refuses_a_post_without_a_csrf_token(app, client):
    page_writes = [rule for rule in routes(app, api=False) if "POST" in rule.methods]
    assert page_writes, "no page accepts POST?"
    urls = app.url_map.bind("testserver")
    for rule in page_writes:
        missing = rule.arguments - SAMPLE_ARGUMENTS.keys()
        if missing:
            pytest.fail(f"{rule.rule}: add sample {missing} to this policy test")
        url = urls.build(rule.endpoint, {name: SAMPLE_ARGUMENTS[name] for name in rule.arguments})
        response = await client.post(url, data={"anything": "x"})
        assert response.status_code == 400, f"{rule.rule} accepted a POST without CSRF"
        assert "CSRF" in response.text


async def test_no_api_route_sets_a_cookie(app, client, alice):
    responses = [
        await client.get("/api/posts"),
        await client.post("/api/posts", json={"body": "x"}, headers=alice.auth),
        await client.get("/api/users/alice"),
        await client.get("/api/nothing"),
    ]
    assert all("set-cookie" not in r.headers for r in responses)
    assert all(r.headers["Content-Type"].startswith("application/") for r in responses)
