"""The app as served, the read from memory."""

from _served import served as app  # noqa: F401
