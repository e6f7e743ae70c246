"""Browsers send ``Secure`` cookies to http://localhost; Python's cookie jar does not.

The app in production marks its session cookie ``Secure``. A browser treats loopback as a
secure context and sends that cookie back over plain HTTP there, so a local load test of
production settings needs the same rule; any other host still gets only HTTPS.
"""

from __future__ import annotations

import ipaddress
from http.cookiejar import Cookie, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackIsSecure(DefaultCookiePolicy):
    def return_ok_secure(self, cookie: Cookie, request: Any) -> bool:
        return is_loopback(request.get_full_url()) or super().return_ok_secure(cookie, request)
