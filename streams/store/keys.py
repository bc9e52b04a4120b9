"""Every Redis key name the product uses, in one place.

With P the configured key prefix and T the input topic:

    P:c:<customer id>        the customer's state (JSON)
    P:h:<customer id>        list: the customer's latest type changes, newest first (for `journey explain`)
    P:q:<customer id>        hash: the quarantine record of a customer whose state cannot be read: state
                             (the raw state as found), reason, since (ISO time), found (by which event or sweep)
    P:mark:T:<partition>     hash: offset (last applied input offset), clock (latest event time),
                             writer (token of the last commit: see streams/live/warm_states.py)
    P:due:T:<partition>      sorted set: customer id -> when time alone would change them
    P:outbox:T:<partition>   list: messages written with the state, not yet acknowledged by Kafka
    P:stats:<host>:<pid>     hash: one worker process's counters, refreshed every second

The offline replay's `--redis` keeps its states under `replay:c:<customer id>` (`REPLAY_STATES`) and
the ids it wrote in the set `replay:index` (`REPLAY_INDEX`): it clears only what that set names.
`replay` is therefore no deployment's prefix (`RESERVED_PREFIXES`).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where `journey replay --redis` keeps its states, and the set of the ids it wrote there.
REPLAY_STATES = "replay:c:"
REPLAY_INDEX = "replay:index"
#: Prefixes a deployment may not use: the replay's keys live under them.
RESERVED_PREFIXES = frozenset({"replay"})


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names of one deployment: its prefix and its input topic."""

    prefix: str
    topic: str

    @classmethod
    def for_settings(cls, settings) -> Keys:
        return cls(settings.key_prefix, settings.topic_touchpoints)

    @property
    def state_prefix(self) -> str:
        """What every customer's state key starts with."""
        return f"{self.prefix}:c:"

    def state(self, customer_id: str) -> str:
        return f"{self.prefix}:c:{customer_id}"

    def history(self, customer_id: str) -> str:
        return f"{self.prefix}:h:{customer_id}"

    def quarantine(self, customer_id: str) -> str:
        return f"{self.prefix}:q:{customer_id}"

    def mark(self, partition: int) -> str:
        return f"{self.prefix}:mark:{self.topic}:{partition}"

    def due(self, partition: int) -> str:
        return f"{self.prefix}:due:{self.topic}:{partition}"

    def outbox(self, partition: int) -> str:
        return f"{self.prefix}:outbox:{self.topic}:{partition}"

    def stats(self, host: str, pid: int) -> str:
        return f"{self.prefix}:stats:{host}:{pid}"

    @property
    def stats_pattern(self) -> str:
        """A SCAN pattern matching every worker's stats hash."""
        return f"{self.prefix}:stats:*"
