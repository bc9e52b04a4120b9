"""The nurture playbook: which actions a lifecycle change triggers, and their cooldowns.

The defaults follow the domain file: prospect → lead-nurture sequence, new → welcome and
onboarding, loyal → loyalty-programme invite, at-risk → win-back offer. An action sent to
a customer is not sent to them again within its cooldown; the skipped one is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas import Priority
from streams.settings import DAY


@dataclass(frozen=True, slots=True)
class ActionSpec:
    action: str
    channel: str
    priority: Priority
    cooldown_s: float
    params: dict[str, Any] = field(default_factory=dict)


Playbook = dict[str, tuple[ActionSpec, ...]]

DEFAULT_PLAYBOOK: Playbook = {
    "prospect": (
        ActionSpec("lead_nurture_sequence", "email", Priority.NORMAL, 14 * DAY,
                   {"sequence": "lead-nurture", "offer": "free_demo"}),
    ),
    "new": (
        ActionSpec("welcome_onboarding", "email", Priority.HIGH, 30 * DAY,
                   {"template": "welcome", "resources": ["video_tutorial", "demo"]}),
    ),
    "loyal": (
        ActionSpec("loyalty_programme_invite", "email", Priority.NORMAL, 90 * DAY,
                   {"programme": "loyalty"}),
    ),
    "at_risk": (
        ActionSpec("win_back_offer", "email", Priority.HIGH, 30 * DAY,
                   {"offer": "win_back_discount"}),
    ),
}
