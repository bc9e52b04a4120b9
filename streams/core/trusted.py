"""Building output models from values the core made itself, without validating them again.

pydantic's `model_construct` skips validation but still walks every field and its aliases on
each call; for the two or three outputs of a typical event that walk was a large share of
the core's time. `trusted(Model)` does that walk once and returns a builder that only fills the
instance. The caller must pass every field without a default, by its Python name, with a
value of the field's type: tests/unit/schemas/test_schemas.py validates what the core builds against the
models and their JSON Schemas.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def trusted(cls: type[M]) -> Callable[..., M]:
    """A builder of `cls` instances from keyword values; fields left out take their (plain, immutable) defaults."""
    fields = cls.model_fields
    if cls.__pydantic_post_init__ or cls.__private_attributes__ or cls.model_config.get("extra") == "allow":
        raise TypeError(f"{cls.__name__}: post-init, private attributes or extra fields need model_construct")
    # A field with a default factory must be passed: a shared default would be one mutable object for all.
    defaults = {name: f.default for name, f in fields.items() if not f.is_required() and f.default_factory is None}
    new, set_attr = cls.__new__, object.__setattr__

    def build(**values: Any) -> M:
        model = new(cls)
        set_attr(model, "__dict__", {**defaults, **values})
        set_attr(model, "__pydantic_fields_set__", set(values))
        set_attr(model, "__pydantic_extra__", None)
        set_attr(model, "__pydantic_private__", None)
        return model

    return build
