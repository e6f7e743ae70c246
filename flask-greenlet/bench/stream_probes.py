"""Streaming through the bridge, measured on a real uvicorn: memory while a 100 MB upload and a
200 MB ``send_file`` pass through one worker, the time to a streamed response's first byte,
and how soon a generator is closed after its client goes away.

    .venv/bin/python bench/stream_probes.py [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as folder:
        big = Path(folder) / "big.bin"
        with big.open("wb") as file:
            file.truncate(200 * MIB)  # sparse: reads give zeros, the disk stays empty
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "stream_app:asgi", "--app-dir", "bench/probes",
             "--port", str(port), "--log-level", "warning"],
            cwd=REPO, env={**os.environ, "PROBE_FILE": str(big)},
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                await _wait_until_up(client)
                figures = {
                    "upload_sync_view": await _upload(client, "/upload", 100),
                    "upload_async_view": await _upload(client, "/upload-async", 100),
                    "send_file": await _download(client, "/file", 200),
                    "sync_generator": await _first_byte_and_close(client, "/ticks", "sync"),
                    "async_generator": await _first_byte_and_close(client, "/async-ticks", "async"),
                }
        finally:
            server.terminate()
            server.wait(10)
    print(_report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


async def _upload(client: httpx.AsyncClient, path: str, mebibytes: int) -> dict[str, float]:
    async def body():
        for _ in range(mebibytes):
            yield b"x" * MIB

    rss = await _reset_peak(client)
    answer = (await client.post(path, content=body())).json()
    assert answer["size"] == mebibytes * MIB, answer
    return {"mib": mebibytes, "peak_growth_mib": (await _peak(client) - rss) / 1024}


async def _download(client: httpx.AsyncClient, path: str, mebibytes: int) -> dict[str, float]:
    rss = await _reset_peak(client)
    size = 0
    async with client.stream("GET", path) as response:
        async for chunk in response.aiter_raw():
            size += len(chunk)
    assert size == mebibytes * MIB, size
    return {"mib": mebibytes, "peak_growth_mib": (await _peak(client) - rss) / 1024}


async def _first_byte_and_close(
    client: httpx.AsyncClient, path: str, kind: str
) -> dict[str, float]:
    closed_before = (await client.get("/memory")).json()["closed"][kind]
    started = time.perf_counter()
    async with client.stream("GET", path) as response:
        async for _ in response.aiter_raw():
            first_byte = time.perf_counter() - started
            break
    left = time.perf_counter()
    while (await client.get("/memory")).json()["closed"][kind] == closed_before:
        if time.perf_counter() - left > 5:
            return {"first_byte_ms": first_byte * 1000, "closed_after_ms": -1}
        await asyncio.sleep(0.02)
    return {
        "first_byte_ms": first_byte * 1000,
        "closed_after_ms": (time.perf_counter() - left) * 1000,
    }


async def _reset_peak(client: httpx.AsyncClient) -> int:
    await client.post("/memory/reset-peak")
    return (await client.get("/memory")).json()["VmRSS"]  # type: ignore[no-any-return]


async def _peak(client: httpx.AsyncClient) -> int:
    return (await client.get("/memory")).json()["VmHWM"]  # type: ignore[no-any-return]


async def _wait_until_up(client: httpx.AsyncClient) -> None:
    for _ in range(150):
        try:
            await client.get("/memory")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the probe server did not start")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # type: ignore[no-any-return]


def _report(figures: dict[str, dict[str, float]]) -> str:
    lines = ["| probe | figure |", "| --- | --- |"]
    for name in ("upload_sync_view", "upload_async_view", "send_file"):
        f = figures[name]
        growth = f["peak_growth_mib"]
        lines.append(f"| {name} ({f['mib']:.0f} MiB) | worker's peak memory +{growth:.1f} MiB |")
    for name in ("sync_generator", "async_generator"):
        f = figures[name]
        lines.append(
            f"| {name} | first byte after {f['first_byte_ms']:.1f} ms; closed "
            f"{f['closed_after_ms']:.0f} ms after the client left |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    sys.exit(asyncio.run(main(parser.parse_args())))
