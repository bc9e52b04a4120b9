"""A compiled rule and what both its readers need: the closures (`compiled.py`) and the generated judge (`codegen.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from streams.core.rules.signals import CATALOGUE, Context
from streams.core.rules.spec import Condition, SignalRef
from streams.core.state import CustomerState


class Values(dict):
    """The signal values of one customer at one instant, each computed on first use (`values[name]`)."""

    __slots__ = ("ctx", "now", "state")

    def __init__(self, state: CustomerState, now: float, ctx: Context) -> None:
        super().__init__()
        self.state, self.now, self.ctx = state, now, ctx

    def __missing__(self, name: str):
        value = self[name] = CATALOGUE[name].read(self.state, self.now, self.ctx)
        return value


Test = Callable[[Values], bool]


#: Decimals of a computed threshold, as of an age (signals.py): equal rounding on both sides keeps
#: float noise from putting a due time a hair before the crossing it was computed for.
PRECISION = 9


def scale(ref: SignalRef) -> Callable[[float | None], float | None]:
    """The threshold a signal reference gives for its base signal's value (None stays None)."""
    times, plus, floor, ceil = ref.times, ref.plus, ref.floor, ref.ceil

    def scaled(base: float | None) -> float | None:
        if base is None:
            return None
        out = times * base + plus
        if floor is not None:
            out = max(floor, out)
        if ceil is not None:
            out = min(ceil, out)
        return round(out, PRECISION)

    return scaled


@dataclass(frozen=True)
class CompiledRule:
    type: str
    description: str
    when: Test
    clear_when: Test | None
    reads: tuple[str, ...]
    #: The touchpoint kinds whose events can change this rule's answer (None: any event).
    on: frozenset[str] | None = None
    #: The conditions as written (for the generated judge, `codegen.py`).
    condition: Condition | None = None
    clear_condition: Condition | None = None
