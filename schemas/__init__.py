"""pydantic models of every message on every topic; `python -m schemas` rewrites `schemas/json/`."""

from pydantic import BaseModel

from schemas.outputs import DeadLetter, Dimension, NurtureAction, Priority, Reason, TypeChange
from schemas.touchpoint import (
    STAGE_OF,
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
    "dead-letter": DeadLetter,
}

__all__ = [
    "MESSAGE_MODELS",
    "STAGE_OF",
    "DeadLetter",
    "Dimension",
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
