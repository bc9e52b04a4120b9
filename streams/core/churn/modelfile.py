"""The churn model file: what `journey fit` writes and `JOURNEY_CHURN_MODEL_FILE` names.

YAML (or JSON, which the same reader takes): the model kind, its parameters, what it was fitted
on, when, and how well. The processor reads only the kind and the parameters; the rest is there
so that a person (and every at-risk change's evidence, which names the file and its date) can tell
which fit decided.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from streams.core.churn.bgnbd import Params
from streams.core.churn.fit import Fit
from streams.yamlfile import validated_yaml

if TYPE_CHECKING:
    from streams.core.churn.logistic import LogisticModel


class ChurnModelError(ValueError):
    """A model file that cannot be used; the message names the line and what is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _positive_finite(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive finite number")
    return value


class ParamsSpec(_Strict):
    r: float
    alpha: float
    a: float
    b: float

    _positive = field_validator("r", "alpha", "a", "b")(_positive_finite)


class FittedOn(_Strict):
    file: str = Field(max_length=256)
    customers: int = Field(ge=0)
    time_unit: Literal["days"] = "days"


class Quality(_Strict):
    log_likelihood: float
    converged: bool
    n: int = Field(ge=0)


class ModelFile(_Strict):
    kind: Literal["bgnbd"]
    params: ParamsSpec
    fitted_on: FittedOn
    at: AwareDatetime = Field(description="The history was cut here: the fit knows nothing later.")
    quality: Quality


@dataclass(frozen=True)
class ChurnModel:
    """A loaded model: the parameters the signals use, and the name and date its evidence names."""

    params: Params
    name: str
    at: str  # ISO 8601, as in the file

    kind: ClassVar[str] = "bgnbd"
    #: Its inputs (x, t_x, T) move only with purchases and time.
    any_event: ClassVar[bool] = False

    @staticmethod
    def history_key(state) -> tuple:
        """What, besides time, the scores read: the same key, the same crossing."""
        return (state.first_purchase_at, state.last_purchase_at, state.purchases)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.at}"


def to_document(fit: Fit, history: str, customers: int, at: datetime) -> dict:
    p = fit.params
    return {
        "kind": "bgnbd",
        "params": {"r": p.r, "alpha": p.alpha, "a": p.a, "b": p.b},
        "fitted_on": {"file": Path(history).name[:256], "customers": customers, "time_unit": "days"},
        "at": at.isoformat().replace("+00:00", "Z"),
        "quality": {"log_likelihood": round(fit.log_likelihood, 6), "converged": fit.converged, "n": fit.n},
    }


def write_model(path: str | Path, document: dict) -> None:
    """JSON when the name ends in .json, YAML otherwise."""
    path = Path(path)
    text = (
        json.dumps(document, indent=2) + "\n"
        if path.suffix.lower() == ".json"
        else yaml.safe_dump(document, sort_keys=False)
    )
    path.write_text(text, encoding="utf-8")


def load_churn_model(path: str | Path) -> ChurnModel:
    path = Path(path)
    spec = validated_yaml(path, ModelFile, ChurnModelError, " (kind, params, fitted_on, at, quality)")
    p = spec.params
    at = spec.at.isoformat().replace("+00:00", "Z")
    return ChurnModel(Params(p.r, p.alpha, p.a, p.b), path.name, at)


def kind_of(path: str | Path) -> str | None:
    """The file's `kind`, read leniently (the strict readers then report every problem with its line)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return document.get("kind") if isinstance(document, dict) else None


def load_model_file(path: str | Path) -> ChurnModel | LogisticModel:
    """A model file of either kind (`kind: bgnbd` or `kind: logistic`), validated; any other kind is refused by
    the BG/NBD reader, naming `kind`."""
    if kind_of(path) == "logistic":
        from streams.core.churn.logistic import load_logistic

        return load_logistic(path)
    return load_churn_model(path)
