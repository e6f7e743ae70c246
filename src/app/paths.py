"""Which part of the site a path belongs to: decided here, and only here."""

API_PREFIX = "/api/"


def is_api_path(path: str) -> bool:
    """Whether ``path`` belongs to the API (problem+json, no cookies)."""
    return path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/")
