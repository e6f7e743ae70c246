"""Compressed answers: zstd, brotli or gzip, as the client's ``Accept-Encoding`` prefers.

Only the API's JSON over 1 KiB. Never the live event stream (each event must leave at once,
not wait in a compressor's buffer), and never HTML pages: they carry the CSRF token beside
text a visitor can choose, which is what a BREACH attack needs to read the token through
the compressed length.
"""

from __future__ import annotations

from flask import Flask
from flask_compress import Compress

COMPRESSED_TYPES = ["application/json", "application/problem+json"]


def init_app(app: Flask) -> None:
    app.config.update(
        COMPRESS_MIMETYPES=COMPRESSED_TYPES,
        COMPRESS_MIN_SIZE=1024,
        COMPRESS_STREAMS=False,
        COMPRESS_ALGORITHM=["zstd", "br", "gzip"],
        COMPRESS_BR_LEVEL=4,  # near gzip's speed, smaller than gzip -6
        COMPRESS_LEVEL=6,
        COMPRESS_EVALUATE_CONDITIONAL_REQUEST=False,  # the views answer If-None-Match
    )
    Compress(app)
