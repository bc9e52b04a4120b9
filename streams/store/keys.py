"""Every Redis key name the product uses, in one place.

With P the configured key prefix, T the input topic and N an input partition:

    P:{pN}:c:<customer id>    the customer's state (JSON)
    P:{pN}:h:<customer id>    string: the customer's latest type changes, newest first, one per line (for `journey
                              explain`; earlier versions kept a list, still read: streams/store/history.py)
    P:{pN}:q:<customer id>    hash: the quarantine record of a customer whose state cannot be read: state
                              (the raw state as found), reason, since (ISO time), found (by which event or sweep)
    P:{pN}:mark:T             hash: offset (last applied input offset), clock (latest event time),
                              writer (token of the last commit: see streams/live/warm_states.py)
    P:{pN}:due:T              sorted set: customer id -> when time alone would change them
    P:{pN}:outbox:T           list: messages written with the state, not yet acknowledged by Kafka
    P:stats:<host>:<pid>      hash: one worker process's counters, refreshed every second

N is the input partition the customer's events arrive on. `{pN}` is a Redis Cluster hash tag: every
key one partition's commit touches hashes to one slot, so the commit script runs on one node of a
cluster, atomically; on a single Redis it is just part of the name (one layout for both). The prefix
stays first so an ACL key pattern (`~P:*`) covers the deployment. A reader that knows only the
customer id finds the partition as Kafka's default partitioner does (`streams/store/lookup.py`).

The offline replay's `--redis` keeps its states under `replay:c:<customer id>` (`REPLAY_STATES`) and
the ids it wrote in the set `replay:index` (`REPLAY_INDEX`): it clears only what that set names.
`replay` is therefore no deployment's prefix (`streams.settings.RESERVED_PREFIXES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Where `journey replay --redis` keeps its states, and the set of the ids it wrote there.
REPLAY_STATES = "replay:c:"
REPLAY_INDEX = "replay:index"


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names of one deployment: its prefix and its input topic."""

    prefix: str
    topic: str

    @classmethod
    def for_settings(cls, settings: Any) -> Keys:
        return cls(settings.key_prefix, settings.topic_touchpoints)

    def tag(self, partition: int) -> str:
        """The start of every key of one input partition, its hash tag included."""
        return f"{self.prefix}:{{p{partition}}}"

    @property
    def state_pattern(self) -> str:
        """A SCAN pattern matching every customer's state key, of every partition."""
        return f"{self.prefix}:{{p*}}:c:*"

    def state(self, partition: int, customer_id: str) -> str:
        return f"{self.prefix}:{{p{partition}}}:c:{customer_id}"

    def history(self, partition: int, customer_id: str) -> str:
        return f"{self.prefix}:{{p{partition}}}:h:{customer_id}"

    def quarantine(self, partition: int, customer_id: str) -> str:
        return f"{self.prefix}:{{p{partition}}}:q:{customer_id}"

    def mark(self, partition: int) -> str:
        return f"{self.prefix}:{{p{partition}}}:mark:{self.topic}"

    def due(self, partition: int) -> str:
        return f"{self.prefix}:{{p{partition}}}:due:{self.topic}"

    def outbox(self, partition: int) -> str:
        return f"{self.prefix}:{{p{partition}}}:outbox:{self.topic}"

    def stats(self, host: str, pid: int) -> str:
        return f"{self.prefix}:stats:{host}:{pid}"

    @property
    def stats_pattern(self) -> str:
        """A SCAN pattern matching every worker's stats hash."""
        return f"{self.prefix}:stats:*"

    @staticmethod
    def customer_of(key: bytes | str) -> tuple[int, str]:
        """The (partition, customer id) of a state, history or quarantine key."""
        text = key.decode() if isinstance(key, bytes) else key
        tag_start = text.index(":{p") + 3
        tag_end = text.index("}:", tag_start)
        return int(text[tag_start:tag_end]), text[tag_end + 4 :]
