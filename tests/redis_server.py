"""A redis-server of a test's own, on a loopback port: to stop, crash, restart and restore at will
(the shared stack's Redis must stay up for every other test).

Tests get one through the `redis_server` fixture of tests/integration/conftest.py, which stops it
at the end of the test.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from streams.local.stack import _wait_for_port, free_port, redis_binary

#: Longest wait for the server to start, load its data, stop or write a snapshot.
WAIT_S = 60.0


class RedisServer:
    """One redis-server process on a loopback port, its files in `workdir` (or the directory it is started on)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self, directory: Path | None = None, appendonly: bool = False) -> None:
        """Start on `directory`'s files (the workdir's `data` by default): from its AOF with `appendonly`
        (written `everysec`), else from its `dump.rdb` if there is one. No RDB save points: a graceful
        stop without `appendonly` leaves nothing to start from."""
        directory = directory or self.workdir / "data"
        directory.mkdir(parents=True, exist_ok=True)
        command = [
            redis_binary(),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory)),
            *("--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec"),
            *("--save", "", "--dbfilename", "dump.rdb"),
        ]
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - redis-server writes to it for its whole life
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait_for_port(self.port, self.proc, "redis-server")
        deadline = time.monotonic() + WAIT_S
        while True:  # the port opens before the data is loaded
            try:
                if self.client().ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def shutdown(self) -> None:
        """A graceful stop (`SHUTDOWN`): Redis writes its AOF out, if it keeps one, and exits."""
        assert self.proc is not None
        self.client().shutdown()
        self.proc.wait(timeout=WAIT_S)

    def kill(self) -> None:
        """A crash: whatever the AOF had not fsynced is gone."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=WAIT_S)

    def snapshot(self, to: Path) -> None:
        """An RDB snapshot of this moment (`BGSAVE`), copied to `to`."""
        client = self.client()
        before = client.lastsave()
        client.bgsave()
        deadline = time.monotonic() + WAIT_S
        while client.lastsave() == before or client.info("persistence")["rdb_bgsave_in_progress"]:
            assert time.monotonic() < deadline, f"no snapshot written within {WAIT_S:g}s"
            time.sleep(0.05)
        directory = Path(client.config_get("dir")["dir"])
        shutil.copy(directory / "dump.rdb", to)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
