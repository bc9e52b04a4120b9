"""Precision, recall, F1 and ROC AUC, exactly and without a machine-learning library.

The AUC is the Mann-Whitney statistic: the chance that a churned customer scores above one who
stayed, ties counting one half (mid-ranks), which is the area under the ROC curve exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class Scores:
    """How one decision (and, if it has one, its score) does against the labels; positive = churned."""

    flagged: int
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float | None  # None: nobody flagged
    recall: float | None  # None: nobody churned
    f1: float | None
    auc: float | None  # None: no score, or only one class among the labels

    def as_dict(self) -> dict:
        return asdict(self)


def roc_auc(score, truth) -> float | None:
    """P(score of a positive > score of a negative) + P(tie) / 2; None when either class is empty."""
    score, truth = np.asarray(score, dtype=float), np.asarray(truth, dtype=bool)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if not positives or not negatives:
        return None
    ranks = rankdata(score)  # mid-ranks for ties; +inf ranks last, as it should
    u = float(ranks[truth].sum()) - positives * (positives + 1) / 2.0
    return u / (positives * negatives)


def scores(decision, truth, score=None) -> Scores:
    decision, truth = np.asarray(decision, dtype=bool), np.asarray(truth, dtype=bool)
    tp = int((decision & truth).sum())
    fp = int((decision & ~truth).sum())
    fn = int((~decision & truth).sum())
    tn = int((~decision & ~truth).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    auc = None if score is None else roc_auc(score, truth)
    return Scores(tp + fp, tp, fp, fn, tn, precision, recall, f1, auc)
