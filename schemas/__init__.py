"""pydantic models of every message on every topic; `python -m schemas` rewrites `schemas/json/`."""

from pydantic import BaseModel

from schemas.outputs import DeadLetter, Dimension, Erasure, HeldOutAction, NurtureAction, Priority, Reason, TypeChange
from schemas.touchpoint import (
    CONSENT_KINDS,
    STAGE_OF,
    ConsentChannel,
    ConsentPayload,
    ErasurePayload,
    OrderPayload,
    ScorePayload,
    Stage,
    SupportPayload,
    Touchpoint,
    TouchpointEvent,
)

#: Every message model, by the file name of its JSON Schema.
MESSAGE_MODELS: dict[str, type[BaseModel]] = {
    "touchpoint-event": TouchpointEvent,
    "type-change": TypeChange,
    "nurture-action": NurtureAction,
    "held-out-action": HeldOutAction,
    "dead-letter": DeadLetter,
    "erasure": Erasure,
}

__all__ = [
    "CONSENT_KINDS",
    "MESSAGE_MODELS",
    "STAGE_OF",
    "ConsentChannel",
    "ConsentPayload",
    "DeadLetter",
    "Dimension",
    "Erasure",
    "ErasurePayload",
    "HeldOutAction",
    "NurtureAction",
    "OrderPayload",
    "Priority",
    "Reason",
    "ScorePayload",
    "Stage",
    "SupportPayload",
    "Touchpoint",
    "TouchpointEvent",
    "TypeChange",
]
