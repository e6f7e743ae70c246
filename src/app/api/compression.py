"""Compressed API answers: zstd, brotli or gzip, as the client's ``Accept-Encoding`` prefers.

Only the API's JSON over 1 KiB. Never the live event stream (each event must leave at once,
not wait in a compressor's buffer), and never HTML pages: they carry the CSRF token beside
text a visitor can choose, which is what a BREACH attack needs to read the token through
the compressed length.

Flask-Compress does the choosing and the compressing, but its own hook would run on every
response of the app. Ours runs on the API's answers only, and hands over only those that can
be compressed: a small answer, or one to a client that accepts no encoding, costs a header
lookup (and, when large, the ``Vary`` that a cache needs).
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_compress import Compress

COMPRESSED_TYPES = ("application/json", "application/problem+json")
MIN_SIZE = 1024


def init_app(app: Flask, blueprint: str) -> None:
    app.config.update(
        COMPRESS_REGISTER=False,  # the hook below decides which answers it sees
        COMPRESS_MIMETYPES=list(COMPRESSED_TYPES),
        COMPRESS_MIN_SIZE=MIN_SIZE,
        COMPRESS_STREAMS=False,
        COMPRESS_ALGORITHM=["zstd", "br", "gzip"],
        COMPRESS_BR_LEVEL=4,  # near gzip's speed, smaller than gzip -6
        COMPRESS_LEVEL=6,
        COMPRESS_EVALUATE_CONDITIONAL_REQUEST=False,  # the views answer If-None-Match
    )
    compress = Compress(app)

    def compress_large_answers(response: Response) -> Response:
        size = response.content_length
        if size is None or size < MIN_SIZE or response.is_streamed:
            return response  # never compressed, whoever asks: no Vary either
        if "HTTP_ACCEPT_ENCODING" not in request.environ:
            response.headers.add("Vary", "Accept-Encoding")  # a list header: one more line is fine
            return response
        return compress.after_request(response)

    app.after_request_funcs.setdefault(blueprint, []).append(compress_large_answers)
