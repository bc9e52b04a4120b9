"""Replay states kept in Redis: a bounded write-back cache in front of one key per customer.

For replays with more customers than memory holds. Round trips are per batch, never per
event: the states a chunk of events will read are loaded ahead with MGET (`prepare`), and
written back with MSET when a chunk of them is evicted, or on `flush`. The cache holds at
most about `capacity` states, so memory stays bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from redis.cluster import RedisCluster

from streams.core import CustomerState
from streams.store import clients
from streams.store.keys import REPLAY_INDEX, REPLAY_STATES

DEFAULT_PREFIX = REPLAY_STATES
DEFAULT_INDEX = REPLAY_INDEX


class RedisStates(MutableMapping[str, CustomerState]):
    """`MutableMapping[customer id, CustomerState]` over Redis keys `<prefix><customer id>`.

    Every key it writes is recorded in the set `index` (in the same round trip), and only those
    keys are ever read back as a whole, cleared or deleted: a key under the prefix that a replay
    did not write (another tool's, or a deployment's) is never touched. It assumes it is the only
    replay writing under its prefix (it clears what earlier replays wrote when created with
    `clear=True`), so a key it never wrote and did not find in a batch load is known absent.
    """

    def __init__(
        self,
        client: clients.SyncClient,
        prefix: str = DEFAULT_PREFIX,
        index: str = DEFAULT_INDEX,
        capacity: int = 50_000,
        batch: int = 2_000,
        clear: bool = True,
    ) -> None:
        self.client, self.prefix, self.index = client, prefix, index
        self.capacity = max(capacity, 16)
        self.batch = max(1, min(batch, self.capacity // 8))  # a batch never crowds out the rest
        self._cache: dict[str, CustomerState] = {}  # insertion order = eviction order
        self._dirty: set[str] = set()
        self._absent: set[str] = set()  # looked up in the last batch load and not in Redis
        self._expected: deque[str] = deque()
        self.round_trips = 0
        self.evicted = 0
        if clear:
            self.clear_prefix()

    @classmethod
    def from_url(cls, url: str, cluster: bool = False, **kwargs: Any) -> RedisStates:
        return cls(clients.sync_client_for_url(url, cluster), **kwargs)

    def _mget(self, keys: list[str]) -> list:
        """MGET, split by slot on a cluster (the states' keys are spread over its nodes)."""
        client = self.client
        return client.mget_nonatomic(keys) if isinstance(client, RedisCluster) else client.mget(keys)

    # ---------------------------------------------------------------- batch loads and stores

    def prepare(self, customer_ids: Iterable[str]) -> None:
        """States about to be read, in this order: loaded ahead, a batch per round trip.

        If they all fit in half the cache they are loaded now (one MGET per `batch` not
        resident); otherwise the first batch is, and each later miss loads the next batch.
        """
        wanted = list(dict.fromkeys(customer_ids))
        self._expected.clear()
        if len(wanted) > self.capacity // 2:
            self._expected.extend(wanted[self.batch :])
            wanted = wanted[: self.batch]
        cache, missing = self._cache, []
        for cid in wanted:
            state = cache.pop(cid, None)
            if state is None:
                missing.append(cid)
            else:
                cache[cid] = state  # moved to the young end
        self._absent.clear()
        self._load(missing)
        self._evict()

    def _load(self, customer_ids: list[str]) -> None:
        prefix = self.prefix
        for start in range(0, len(customer_ids), self.batch):
            ids = customer_ids[start : start + self.batch]
            raws = self._mget([prefix + cid for cid in ids])
            self.round_trips += 1
            for cid, raw in zip(ids, raws, strict=True):
                if raw is None:
                    self._absent.add(cid)
                else:
                    self._cache[cid] = CustomerState.from_json(raw)

    def _store(self, customer_ids: list[str]) -> None:
        for start in range(0, len(customer_ids), self.batch):
            ids = customer_ids[start : start + self.batch]
            states = {self.prefix + cid: self._cache[cid].to_json() for cid in ids}
            if isinstance(self.client, RedisCluster):  # split by slot; the index is written once the states are
                self.client.mset_nonatomic(states)
                self.client.sadd(self.index, *ids)
            else:
                pipe = self.client.pipeline(transaction=False)
                pipe.mset(states)
                pipe.sadd(self.index, *ids)
                pipe.execute()
            self.round_trips += 1
            self._dirty.difference_update(ids)

    def _evict(self) -> None:
        """Write back and drop the oldest states, a chunk at a time, until within capacity."""
        excess = len(self._cache) - self.capacity
        if excess <= 0:
            return
        oldest = []
        for cid in self._cache:
            oldest.append(cid)
            if len(oldest) >= max(excess, self.batch):
                break
        self._store([cid for cid in oldest if cid in self._dirty])
        for cid in oldest:
            del self._cache[cid]
        self.evicted += len(oldest)

    def flush(self) -> None:
        """Write every changed state back to Redis."""
        self._store([cid for cid in self._cache if cid in self._dirty])

    def clear_prefix(self) -> None:
        """Remove every state an earlier replay wrote (the index says which): a replay starts from no state."""
        for ids in _chunks(self._written(), 1000):
            self.client.unlink(*(self.prefix + cid for cid in ids))  # split by slot on a cluster
            self.client.srem(self.index, *ids)
            self.round_trips += 1
        self._cache.clear()
        self._dirty.clear()

    def _written(self) -> Iterator[str]:
        """The ids of the states this replay's index records (a SCAN of the set, never of the keyspace)."""
        for member in self.client.sscan_iter(self.index, count=1000):
            yield member.decode() if isinstance(member, bytes) else member

    def iter_states(self) -> Iterator[CustomerState]:
        """Every state in Redis, a batch at a time (after a flush)."""
        self.flush()
        for ids in _chunks(self._written(), self.batch):
            self.round_trips += 1
            for raw in self._mget([self.prefix + cid for cid in ids]):
                if raw is not None:
                    yield CustomerState.from_json(raw)

    # ---------------------------------------------------------------- the mapping

    def __getitem__(self, customer_id: str) -> CustomerState:
        state = self._cache.get(customer_id)
        if state is not None:
            return state
        if customer_id in self._absent:
            raise KeyError(customer_id)
        self._load_missing(customer_id)
        state = self._cache.get(customer_id)
        if state is None:
            raise KeyError(customer_id)
        return state

    def _load_missing(self, customer_id: str) -> None:
        """A miss: load it with the next expected states not resident, in one round trip."""
        ids, expected = [customer_id], self._expected
        while expected and len(ids) < self.batch:
            cid = expected.popleft()
            if cid not in self._cache and cid != customer_id:
                ids.append(cid)
        self._absent.clear()
        self._load(ids)
        # Evict before handing out the state: it is the youngest entry, so it stays resident.
        self._evict()

    def __setitem__(self, customer_id: str, state: CustomerState) -> None:
        if customer_id not in self._cache:
            self._absent.discard(customer_id)
        self._cache[customer_id] = state
        self._dirty.add(customer_id)

    def __delitem__(self, customer_id: str) -> None:
        self._cache.pop(customer_id, None)
        self._dirty.discard(customer_id)
        deleted = self.client.delete(self.prefix + customer_id)
        self.client.srem(self.index, customer_id)
        if not deleted:
            raise KeyError(customer_id)

    def __iter__(self) -> Iterator[str]:
        self.flush()
        yield from self._written()

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
