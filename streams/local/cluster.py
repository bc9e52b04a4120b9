"""A real Redis Cluster of three masters on loopback, started from the redis-server binary the local stack runs.

Shared by the integration tests and `benchmarks/bench_pipeline.py --redis-cluster`, so both run on the
same kind of cluster.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from streams.local.stack import _wait_for_port, free_port, redis_binary


def _cluster_state(node: redis.Redis) -> str:
    info = node.execute_command("CLUSTER INFO")
    if isinstance(info, dict):
        return str(info.get("cluster_state"))
    text = info.decode() if isinstance(info, bytes) else str(info)
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("cluster_state:")), "")


class RedisCluster:
    """A real Redis Cluster of three masters on loopback, from the redis-server the local stack runs.

    Each node is told its third of the 16384 slots (CLUSTER ADDSLOTS) and to meet the first node;
    it is ready once every node reports `cluster_state:ok`.
    """

    SLOTS = 16384

    @staticmethod
    def _port() -> int:
        """A free port whose cluster bus port (port + 10000) exists."""
        while (port := free_port()) > 55000:
            pass
        return port

    def __init__(self, root: Path, masters: int = 3, timeout: float = 30.0) -> None:
        self.ports = [self._port() for _ in range(masters)]
        self.procs: list[subprocess.Popen] = []
        for port in self.ports:
            node_dir = root / f"node-{port}"
            node_dir.mkdir(parents=True)
            args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir)]
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            log = (node_dir / "redis.log").open("w")
            self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
        for port, proc in zip(self.ports, self.procs, strict=True):
            _wait_for_port(port, proc, "cluster redis-server")
        nodes = [redis.Redis(port=port) for port in self.ports]
        share = self.SLOTS // masters
        for i, node in enumerate(nodes):
            end = self.SLOTS if i == masters - 1 else (i + 1) * share
            slots = list(range(i * share, end))
            for start in range(0, len(slots), 1000):
                node.execute_command("CLUSTER ADDSLOTS", *slots[start : start + 1000])
            if i:
                node.execute_command("CLUSTER MEET", "127.0.0.1", self.ports[0])
        deadline = time.monotonic() + timeout
        while not all(_cluster_state(node) == "ok" for node in nodes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster on ports {self.ports} did not reach cluster_state:ok")
            time.sleep(0.1)
        for node in nodes:
            node.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
