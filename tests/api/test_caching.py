"""ETag and If-None-Match on the API's documents, and compressed answers over 1 KiB (the
event stream, never compressed, is tested on a real server in live/test_timeline.py)."""

import gzip

import brotli
import pytest
from backports import zstd
from support.accounts import ApiUser


async def write(client, user: ApiUser, body: str) -> dict:
    response = await client.post("/api/posts", json={"body": body}, headers=user.auth)
    assert response.status_code == 201, response.text
    return response.json()


def documents(post_id, username):
    return [
        f"/api/posts/{post_id}",
        "/api/posts?limit=5",
        f"/api/users/{username}",
        f"/api/users/{username}/posts",
    ]


async def test_every_document_has_an_etag_and_a_current_copy_gets_304(client, alice):
    post = await write(client, alice, "cache me")
    for path in [*documents(post["id"], "alice"), "/api/users/me"]:
        first = await client.get(path, headers=alice.auth)
        etag = first.headers["ETag"]
        assert etag.startswith('W/"') and first.headers["Cache-Control"] == "no-cache"
        again = await client.get(path, headers={**alice.auth, "If-None-Match": etag})
        assert again.status_code == 304, path
        assert again.content == b"" and again.headers["ETag"] == etag
        listed = await client.get(path, headers={**alice.auth, "If-None-Match": f'"x", {etag}'})
        assert listed.status_code == 304, path
        stale = await client.get(path, headers={**alice.auth, "If-None-Match": 'W/"stale"'})
        assert stale.status_code == 200 and stale.json() == first.json()


async def test_a_change_changes_the_etag(client, alice):
    post = await write(client, alice, "before")
    paths = documents(post["id"], "alice")
    before = {path: (await client.get(path)).headers["ETag"] for path in paths}
    edited = await client.patch(
        f"/api/posts/{post['id']}", json={"body": "after"}, headers=alice.auth
    )
    assert edited.status_code == 200
    for path in paths[:2]:  # the post and the pages that hold it
        response = await client.get(path, headers={"If-None-Match": before[path]})
        assert response.status_code == 200 and response.headers["ETag"] != before[path]
    await write(client, alice, "another")  # the user's post count and page change
    for path in paths[2:]:
        response = await client.get(path, headers={"If-None-Match": before[path]})
        assert response.status_code == 200, path


DECODERS = {"gzip": gzip.decompress, "br": brotli.decompress, "zstd": zstd.decompress}


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
async def test_answers_over_a_kibibyte_are_compressed_as_the_client_asks(client, alice, encoding):
    for n in range(12):
        await write(client, alice, f"post number {n} " + "padding " * 20)
    plain = await client.get("/api/posts", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and len(plain.content) > 1024
    async with client.stream("GET", "/api/posts", headers={"Accept-Encoding": encoding}) as sent:
        assert sent.headers["Content-Encoding"] == encoding
        assert "Accept-Encoding" in sent.headers["Vary"]
        raw = b"".join([chunk async for chunk in sent.aiter_raw()])
    assert int(sent.headers["Content-Length"]) == len(raw) < len(plain.content) / 2
    assert DECODERS[encoding](raw) == plain.content


async def test_small_answers_and_pages_are_never_compressed(client, alice):
    post = await write(client, alice, "small")
    small = await client.get(f"/api/posts/{post['id']}", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers
    for _ in range(12):
        await write(client, alice, "x" * 200)
    page = await client.get("/", headers={"Accept-Encoding": "gzip, br"})
    assert len(page.content) > 1024 and "Content-Encoding" not in page.headers


async def test_a_large_answer_sent_plain_still_tells_caches_it_varies_by_encoding(client, alice):
    for n in range(12):
        await write(client, alice, f"post number {n} " + "padding " * 20)
    plain = client.build_request("GET", "/api/posts")
    del plain.headers["Accept-Encoding"]  # a client that accepts no encoding at all
    response = await client.send(plain)
    assert len(response.content) > 1024 and "Content-Encoding" not in response.headers
    assert "Accept-Encoding" in response.headers["Vary"]
    small = client.build_request("GET", "/api/users/alice")
    del small.headers["Accept-Encoding"]
    assert "Accept-Encoding" not in (await client.send(small)).headers.get("Vary", "")
