"""The pure core: (state, event, time) in, (state, changes, actions) out. No I/O here.

The live worker and the offline replay both call `apply_event` and `advance`, so the
same events give the same outputs in either.
"""

from streams.core.engine import Outcome, advance, apply_event, next_due
from streams.core.state import CustomerState

__all__ = ["CustomerState", "Outcome", "advance", "apply_event", "next_due"]
