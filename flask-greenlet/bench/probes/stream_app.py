"""A plain Flask app served through flask_greenlet, for the streaming probes (stream_probes.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

from flask import Response, request, send_file
from flask_greenlet import ASGIApp, AsyncFlask

app = AsyncFlask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 1 << 30
closed_generators = {"sync": 0, "async": 0}


def digest_of_body() -> dict[str, object]:
    digest, size = hashlib.sha256(), 0
    while chunk := request.stream.read(1 << 16):
        digest.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


@app.post("/upload")
def upload() -> dict[str, object]:
    return digest_of_body()


@app.post("/upload-async")
async def upload_async() -> dict[str, object]:
    return digest_of_body()


@app.get("/file")
def file() -> Response:
    return send_file(os.environ["PROBE_FILE"], mimetype="application/octet-stream")


@app.get("/ticks")
def ticks() -> Response:
    def generate():
        try:
            yield b"first\n"
            while True:
                time.sleep(0.2)
                yield b"tick\n"
        finally:
            closed_generators["sync"] += 1

    return Response(generate(), mimetype="text/plain")


@app.get("/async-ticks")
async def async_ticks() -> Response:
    async def generate():
        try:
            yield b"first\n"
            while True:
                await asyncio.sleep(0.2)
                yield b"tick\n"
        finally:
            closed_generators["async"] += 1

    return Response(generate(), mimetype="text/plain")


@app.get("/memory")
def memory() -> dict[str, object]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    kib = {key: int(status[key].split()[0]) for key in ("VmRSS", "VmHWM")}
    return {**kib, "closed": closed_generators}


@app.post("/memory/reset-peak")
def reset_peak() -> str:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from VmRSS
    return ""


asgi = ASGIApp(app)
