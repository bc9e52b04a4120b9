"""The logistic churn model as a model file (`kind: logistic`), as `journey fit --kind logistic` writes it.

Same layout as the BG/NBD file (`streams/core/churn/modelfile.py`: kind, what it was fitted on, the
cut, the fit quality), with the horizon it was trained for, the feature names in order, their
training means and scales, and one weight per feature. The file's layout and reader live in the core
(`streams/core/churn/logistic.py`), which the live `churn_risk` scores with; this writes it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from streams.churn.logistic import FEATURES, Logistic
from streams.core.churn.logistic import LogisticFile, LogisticModel, load_logistic
from streams.core.churn.modelfile import kind_of

__all__ = ["LogisticFile", "LogisticModel", "kind_of", "load_logistic", "to_document"]


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
