"""The logistic churn model as a model file (`kind: logistic`), as `journey fit --kind logistic` writes it.

Same layout as the BG/NBD file (`streams/core/churn/modelfile.py`: kind, what it was fitted on, the
cut, the fit quality), with the horizon it was trained for, the feature names in order, their
training means and scales, and one weight per feature. `journey evaluate --churn-model` scores with
it; the live churn signals read `kind: bgnbd` only (see the README).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from streams.churn.logistic import FEATURES, Logistic
from streams.core.churn.modelfile import ChurnModelError, FittedOn
from streams.yamlfile import validated_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(values: dict[str, float]) -> dict[str, float]:
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number")
    return values


class Trained(_Strict):
    features_at: AwareDatetime = Field(description="Features read here (the cut minus the horizon) ...")
    labels_until: AwareDatetime = Field(description="... labels from purchases up to here (the cut).")
    customers: int = Field(ge=2)
    churned: int = Field(ge=1)


class LogisticQuality(_Strict):
    log_loss: float = Field(ge=0)
    converged: bool
    n: int = Field(ge=2)


class LogisticFile(_Strict):
    kind: Literal["logistic"]
    horizon_days: float = Field(gt=0, allow_inf_nan=False)
    first_rhythm_days: float = Field(gt=0, allow_inf_nan=False, description="The interval of one-time buyers.")
    intercept: float = Field(allow_inf_nan=False)
    weights: dict[str, float]
    mean: dict[str, float]
    scale: dict[str, float]
    fitted_on: FittedOn
    trained: Trained
    at: AwareDatetime
    quality: LogisticQuality

    _finite_maps = field_validator("weights", "mean", "scale")(_finite)

    @model_validator(mode="after")
    def _features(self) -> LogisticFile:
        for name in ("weights", "mean", "scale"):
            if list(getattr(self, name)) != list(FEATURES):
                raise ValueError(f"{name} must name exactly these features, in this order: {', '.join(FEATURES)}")
        if any(v <= 0 for v in self.scale.values()):
            raise ValueError("every scale must be positive")
        return self


@dataclass(frozen=True)
class LoadedLogistic:
    model: Logistic
    horizon_days: float
    first_rhythm_days: float
    name: str
    at: str

    @property
    def label(self) -> str:
        return f"{self.name}@{self.at}"


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def to_document(
    model: Logistic,
    history: str,
    at: datetime,
    features_at: datetime,
    horizon_days: float,
    first_rhythm_days: float,
    churned: np.ndarray,
    log_loss: float,
) -> dict:
    return {
        "kind": "logistic",
        "horizon_days": horizon_days,
        "first_rhythm_days": first_rhythm_days,
        "intercept": float(model.weights[0]),
        "weights": {name: float(w) for name, w in zip(FEATURES, model.weights[1:], strict=True)},
        "mean": {name: float(v) for name, v in zip(FEATURES, model.mean, strict=True)},
        "scale": {name: float(v) for name, v in zip(FEATURES, model.scale, strict=True)},
        "fitted_on": {"file": Path(history).name[:256], "customers": len(churned), "time_unit": "days"},
        "trained": {
            "features_at": _iso(features_at),
            "labels_until": _iso(at),
            "customers": len(churned),
            "churned": int(churned.sum()),
        },
        "at": _iso(at),
        "quality": {"log_loss": round(log_loss, 6), "converged": model.converged, "n": len(churned)},
    }


def load_logistic(path: str | Path) -> LoadedLogistic:
    path = Path(path)
    spec = validated_yaml(path, LogisticFile, ChurnModelError, " (kind, horizon_days, weights, mean, scale, ...)")
    model = Logistic(
        np.array(list(spec.mean.values())),
        np.array(list(spec.scale.values())),
        np.array([spec.intercept, *spec.weights.values()]),
        spec.quality.converged,
    )
    return LoadedLogistic(model, spec.horizon_days, spec.first_rhythm_days, path.name, _iso(spec.at))


def kind_of(path: str | Path) -> str | None:
    """The file's `kind`, read leniently (the strict readers then report every problem with its line)."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return document.get("kind") if isinstance(document, dict) else None
