"""Starting a stack's server pinned to core 0, waiting until it answers, and stopping it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from stacks import REPO, Stack

SERVER_CORE = "0"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class ServerFailed(RuntimeError):
    """The server did not come up, or died while we measured it."""


class Server:
    """One running server; ``with Server(...) as server:`` stops it whatever happens."""

    def __init__(
        self,
        stack: Stack,
        database_url: str,
        log_path: Path,
        *,
        workers: int = 1,
        pinned: bool = True,
        checkout: Path | None = None,
    ) -> None:
        """``checkout``: serve the app from another working tree of this repository (an
        earlier commit, for a before-and-after), with the same virtual environment."""
        self.stack = stack
        self.base_url = f"http://127.0.0.1:{stack.port}"
        command = stack.command(workers)
        if pinned:
            # taskset execs the server, so the PID we hold is the server's own.
            command = ["taskset", "-c", SERVER_CORE, *command]
        self._command = command
        self._env = {**os.environ, **stack.environment(database_url, workers)}
        self._cwd = REPO
        if checkout is not None:
            self._cwd = checkout
            # Ahead of the editable installs' paths, so the checkout's packages are imported.
            self._env["PYTHONPATH"] = f"{checkout / 'src'}:{checkout / 'flask-greenlet' / 'src'}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> Server:
        _refuse_busy_port(self.stack.port)
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("ab") as log:
            # A session of its own, so stopping it reaches the workers it forks, and only them.
            self._process = subprocess.Popen(
                self._command,
                cwd=self._cwd,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_ready()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise ServerFailed(
                f"{self.stack.name} exited ({self._process.returncode}); "
                f"see {self._log_path}\n{self._log_tail()}"
            )

    def rss_kib(self) -> int:
        """Resident set size of the server process (with one worker, the worker itself)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise ServerFailed(f"no VmRSS for pid {self.pid}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/posts?limit=1", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise ServerFailed(
            f"{self.stack.name} did not answer within {READY_TIMEOUT_S:.0f} s\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _refuse_busy_port(port: int) -> None:
    """Something else on our port would be measured instead of our server: refuse to start."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5)
    except urllib.error.HTTPError:
        pass  # an HTTP answer, even an error, means the port is taken
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return
    raise ServerFailed(f"port {port} is already in use")
