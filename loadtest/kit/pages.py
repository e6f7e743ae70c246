"""What a browser reads off the HTML pages: the CSRF token, the id a redirect points at."""

from __future__ import annotations

import html
import re

_CSRF = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')
_POST_ANCHOR = re.compile(r"#post-(\d+)$")
_OLDER = re.compile(r'rel="next" href="([^"]+)"')


def csrf_token(html: str) -> str | None:
    match = _CSRF.search(html)
    return match.group(1) if match else None


def post_id_from_location(location: str | None) -> int | None:
    """The new post's id from the redirect after posting (``/#post-123``)."""
    match = _POST_ANCHOR.search(location or "")
    return int(match.group(1)) if match else None


def older_page_link(page: str) -> str | None:
    """Where the page's "Older" link goes, if it has one."""
    match = _OLDER.search(page)
    return html.unescape(match.group(1)) if match else None
