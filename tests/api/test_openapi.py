"""GET /api/openapi.json describes every API route from the schemas that validate requests."""

import re

import pytest

from app.api.schemas import PostCreate, UserCreate

UNDOCUMENTED = {"api.openapi_document", "api.api_docs"}  # the document, and its reader


@pytest.fixture
async def document(client):
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def api_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint not in UNDOCUMENTED:
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                yield rule, method.lower()


async def test_it_is_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")


async def test_every_api_route_is_in_the_document(app, document):
    for rule, method in api_routes(app):
        path = re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule.rule)
        assert method in document["paths"][path], f"{method.upper()} {rule.rule} is undocumented"


async def test_every_schema_reference_resolves(document):
    schemas = document["components"]["schemas"]

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


async def test_request_bodies_use_the_validating_schemas(document):
    schemas = document["components"]["schemas"]
    assert (
        schemas["PostCreate"]["properties"]["body"]["maxLength"]
        == (PostCreate.model_json_schema()["properties"]["body"]["maxLength"])
    )
    assert set(schemas["UserCreate"]["required"]) == set(UserCreate.model_json_schema()["required"])
    create_post = document["paths"]["/api/posts"]["post"]
    assert create_post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PostCreate"
    )
    assert create_post["security"] == [{"bearer": []}]


async def test_errors_are_documented_as_problem_json(document):
    not_found = document["paths"]["/api/posts/{post_id}"]["get"]["responses"]["404"]
    assert "application/problem+json" in not_found["content"]


async def test_query_parameters_are_documented(document):
    parameters = document["paths"]["/api/posts"]["get"]["parameters"]
    assert {p["name"] for p in parameters if p["in"] == "query"} == {"limit", "cursor"}


async def test_conditional_reads_document_etag_if_none_match_and_304(document):
    read = document["paths"]["/api/posts/{post_id}"]["get"]
    assert "If-None-Match" in {p["name"] for p in read["parameters"] if p["in"] == "header"}
    assert "ETag" in read["responses"]["200"]["headers"]
    assert "304" in read["responses"] and "content" not in read["responses"]["304"]


async def test_limited_operations_document_their_ratelimit_headers(document):
    write = document["paths"]["/api/posts"]["post"]["responses"]
    assert {"RateLimit", "RateLimit-Policy"} <= set(write["201"]["headers"])
    assert "Retry-After" in write["429"]["headers"]


async def test_problem_documents_have_exactly_the_documented_fields(client, document):
    schema = document["components"]["schemas"]
    response = await client.get("/api/posts", params={"limit": 0})
    problem = response.json()
    assert set(problem) <= set(schema["Problem"]["properties"])
    assert set(schema["Problem"]["required"]) <= set(problem)
    assert set(problem["errors"][0]) == set(schema["ProblemField"]["properties"])
