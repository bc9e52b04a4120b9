"""The playbook file, as pydantic models: actions, what triggers them, caps and suppression."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas import ConsentChannel, Priority
from streams.yamlfile import custom_error


class Kind(StrEnum):
    PROMOTION = "promotion"  # an offer: suppressed while a customer is angry, capped
    MARKETING = "marketing"  # a marketing message without an offer: capped
    SERVICE = "service"  # support routing and care: never capped or suppressed by mood


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Action(_Strict):
    channel: str = Field(min_length=1)
    priority: Priority = Priority.NORMAL
    kind: Kind
    cooldown_days: NonNegativeFloat = Field(description="Not sent again to the same customer within this many days.")
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    holdout: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        strict=False,
        allow_inf_nan=False,
        description="Share of customers held out of this action (a control group): decided by a stable hash "
        "of the customer id, the action and JOURNEY_HOLDOUT_SALT; their action goes to the holdouts topic.",
    )


class Caps(_Strict):
    marketing_per_week: NonNegativeInt = Field(
        3, description="Most promotion + marketing messages per customer per 7 days."
    )


class Suppression(_Strict):
    promotions_while: list[str] = Field(
        default_factory=list, description="Traits during which no promotion is sent (e.g. angry)."
    )
    last_win_back: str | None = Field(
        None,
        description="Action sent once to a lapsed customer; after it, no promotion or marketing until they return.",
    )


#: A local time of day, "HH:MM" on a 24-hour clock.
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class QuietHours(_Strict):
    """A daily window of the customer's local time in which marketing and promotion wait (service never does)."""

    from_: str = Field(alias="from", pattern=HHMM, description="Start of the window, local time (e.g. 21:00).")
    to: str = Field(pattern=HHMM, description="Its end, local time (e.g. 08:00); before `from`, it wraps midnight.")

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _sexagesimal(cls, value: Any) -> Any:
        """YAML 1.1 (PyYAML) reads an unquoted 21:00 as the number 1260 (base 60): read it back as the time."""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return f"{value // 60:02d}:{value % 60:02d}"
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.from_ == self.to:
            raise custom_error(f"`from` and `to` are both {self.to}: a window needs two different times", at="to")
        return self


class ConsentPolicy(StrEnum):
    OPT_IN = "opt_in"  # no marketing on the channel until the customer grants consent
    OPT_OUT = "opt_out"  # marketing until the customer revokes it (or unsubscribes)


#: The channels a consent policy may name: the ones consent events carry (`schemas.ConsentChannel`).
CONSENT_CHANNELS = tuple(channel.value for channel in ConsentChannel)


class PlaybookFile(_Strict):
    version: int = Field(1, ge=1, le=1)
    caps: Caps = Field(default_factory=Caps)
    suppress: Suppression = Field(default_factory=Suppression)
    quiet_hours: QuietHours | None = Field(
        None, description="Marketing and promotion decided inside it are deferred to its end (none: never deferred)."
    )
    consent: dict[str, ConsentPolicy] = Field(
        default_factory=dict,
        description="Channel (email, sms, push, phone, ads) -> opt_in or opt_out for marketing and promotion; "
        "a channel not named (web, chat, support, …) needs no consent.",
    )
    actions: dict[str, Action]
    triggers: dict[str, list[str]] = Field(description="Type (lifecycle type or trait) -> actions sent on entering it.")

    @model_validator(mode="after")
    def _known_names(self, info: ValidationInfo) -> PlaybookFile:
        types, rules = (info.context or {}).get("types"), (info.context or {}).get("rules", "the rules")
        for type_, names in self.triggers.items():
            if types is not None and type_ not in types:
                raise custom_error(
                    f"{type_!r} is not a type {rules} defines ({', '.join(sorted(types))})", at=f"triggers.{type_}"
                )
            for name in names:
                if name not in self.actions:
                    raise custom_error(f"unknown action {name!r} (define it under `actions`)", at=f"triggers.{type_}")
        if self.suppress.last_win_back is not None and self.suppress.last_win_back not in self.actions:
            raise custom_error(f"unknown action {self.suppress.last_win_back!r}", at="suppress.last_win_back")
        for channel in self.consent:
            if channel not in CONSENT_CHANNELS:
                raise custom_error(
                    f"{channel!r} is not a channel consent is given for ({', '.join(CONSENT_CHANNELS)})",
                    at=f"consent.{channel}",
                )
        for name in self.suppress.promotions_while:
            if types is not None and name not in types:
                raise custom_error(f"{name!r} is not a type {rules} defines", at="suppress.promotions_while")
        return self
