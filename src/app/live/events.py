"""Server-Sent Events, as bytes on the wire (https://html.spec.whatwg.org/#server-sent-events)."""

from __future__ import annotations

HEARTBEAT = b": heartbeat\n\n"  # a comment: keeps proxies from closing an idle stream


def post_event(post_id: int, document: bytes) -> bytes:
    """A new post: its id is the event id, which a client sends back as ``Last-Event-ID``."""
    return b"id: %d\nevent: post\ndata: %s\n\n" % (post_id, document)


def edit_event(document: bytes) -> bytes:
    """An edited post, whole. No event id: edits are not replayed to a client that reconnects
    (its next page load shows them), so they never disturb the ``Last-Event-ID`` sequence."""
    return b"event: edit\ndata: %s\n\n" % document


def delete_event(post_id: int) -> bytes:
    """A deleted post. No event id: a resuming client goes on from the newest post it saw."""
    return b'event: delete\ndata: {"id":%d}\n\n' % post_id


def retry_hint(milliseconds: int) -> bytes:
    """How long a browser's EventSource waits before it reconnects."""
    return b"retry: %d\n\n" % milliseconds
