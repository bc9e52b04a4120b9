"""`journey fit` and `journey evaluate` on histories drawn from known BG/NBD parameters.

Every figure the commands print is checked against a count made here, independently of the
replay: the purchase times are generated here, and labels, decisions and AUCs are computed from
them with numpy alone.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from streams.churn.metrics import roc_auc, scores
from streams.cli import main as journey
from streams.core.churn.bgnbd import Params, churn_risk
from streams.core.churn.fit import fit_bgnbd, mean_log_likelihood_and_gradient
from streams.core.churn.simulate import simulate

DAY = 86_400.0
START = datetime(2026, 1, 1, tzinfo=UTC)
CDNOW_DAYS = Params(0.243, 4.414 * 7, 0.793, 2.426)  # the paper's estimates, alpha from weeks to days
#: Relative tolerance of each parameter `journey fit` recovers from 8,000 simulated customers.
FIT_TOLERANCE = 0.2


def generate(
    path: Path, params: Params, n: int, seed: int, first_days: float, end_days: float
) -> dict[str, np.ndarray]:
    """Write a history of `n` customers whose first purchase falls in the first `first_days` days, observed
    to `end_days`; returns each customer's purchase times (epoch seconds, whole seconds).

    `simulate` draws each customer's repeat count x and last purchase t_x; given those, a Poisson
    process's earlier repeat times are uniform order statistics on (0, t_x), so filling them in so is exact.
    """
    rng = np.random.default_rng(seed)
    first = rng.uniform(0.0, first_days, n)
    x, t_x, _ = simulate(params, end_days - first, seed=seed + 1)
    times: dict[str, np.ndarray] = {}
    lines = []
    for i in range(n):
        k = int(x[i])
        offsets = np.concatenate([[0.0], np.sort(rng.uniform(0.0, t_x[i], max(k - 1, 0))), [t_x[i]] if k else []])
        stamps = np.round(START.timestamp() + (first[i] + offsets) * DAY)
        times[f"c{i:05d}"] = stamps
        for j, ts in enumerate(stamps):
            at = datetime.fromtimestamp(float(ts), UTC).isoformat().replace("+00:00", "Z")
            event = {
                "event_id": f"c{i:05d}-{j}",
                "customer_id": f"c{i:05d}",
                "occurred_at": at,
                "stage": "purchase",
                "touchpoint": "purchase",
                "channel": "web",
                "payload": {"kind": "order", "amount": 25.0, "currency": "EUR"},
            }
            lines.append((ts, json.dumps(event)))
    lines.sort(key=lambda pair: pair[0])
    path.write_text("".join(line + "\n" for _, line in lines))
    return times


def iso(days: float) -> str:
    return (START + timedelta(days=days)).isoformat().replace("+00:00", "Z")


def inputs_at(times: dict[str, np.ndarray], at: float) -> dict[str, tuple[int, float, float]]:
    """(x, t_x, T) in days of every customer who bought by `at`, from the generated times."""
    out = {}
    for cid, stamps in times.items():
        seen = stamps[stamps <= at]
        if len(seen):
            out[cid] = (len(seen) - 1, (seen[-1] - seen[0]) / DAY, (at - seen[0]) / DAY)
    return out


def run(args: list[str]):
    return CliRunner().invoke(journey, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("churn") / "history.jsonl"
    return path, generate(path, CDNOW_DAYS, 8_000, seed=3, first_days=120.0, end_days=480.0)


def test_fit_recovers_the_parameters_and_reads_the_inputs_the_replay_does(history, tmp_path: Path) -> None:
    path, times = history
    at_days = 390.0
    out = tmp_path / "model.yaml"
    result = run(["fit", str(path), "--at", iso(at_days), "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(out.read_text())
    got = document["params"]
    for name in ("r", "alpha", "a", "b"):
        assert abs(got[name] / getattr(CDNOW_DAYS, name) - 1) < FIT_TOLERANCE, (name, got[name])
    # The same fit on inputs counted here from the generated times: the replay read each customer's x, t_x, T.
    x, t_x, T = (np.array(c) for c in zip(*inputs_at(times, START.timestamp() + at_days * DAY).values(), strict=True))
    direct = fit_bgnbd(x, t_x, T)
    for name in ("r", "alpha", "a", "b"):
        assert got[name] == pytest.approx(getattr(direct.params, name), rel=1e-6)
    assert document["fitted_on"] == {"file": "history.jsonl", "customers": len(x), "time_unit": "days"}
    assert document["quality"]["log_likelihood"] == pytest.approx(direct.log_likelihood, abs=1e-3)
    assert document["quality"]["converged"] is True
    assert document["at"] == iso(at_days)
    assert "converged" in result.output and f"{len(x):,}" in result.output


def test_fit_writes_json_by_suffix(history, tmp_path: Path) -> None:
    out = tmp_path / "model.json"
    assert run(["fit", str(history[0]), "--at", iso(300.0), "--out", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["kind"] == "bgnbd"


def _independent(times: dict[str, np.ndarray], at: float, horizon_days: float):
    ids = sorted(cid for cid, s in times.items() if (s <= at).any())
    churned = np.array([not ((times[c] > at) & (times[c] <= at + horizon_days * DAY)).any() for c in ids])
    seen = [times[c][times[c] <= at] for c in ids]
    since = np.array([(at - s[-1]) / DAY for s in seen])
    interval = np.array([(s[-1] - s[0]) / DAY / (len(s) - 1) if len(s) > 1 else 30.0 for s in seen])
    return ids, churned, seen, since, interval


def _brute_auc(score: np.ndarray, truth: np.ndarray) -> float:
    pos, neg = score[truth], score[~truth]
    wins = sum(float((p > neg).sum() + 0.5 * (p == neg).sum()) for p in pos)
    return wins / (len(pos) * len(neg))


def test_evaluate_figures_match_an_independent_count(history, tmp_path: Path) -> None:
    path, times = history
    at_days, horizon = 360.0, 90.0
    at = START.timestamp() + at_days * DAY
    model = tmp_path / "model.yaml"
    assert run(["fit", str(path), "--at", iso(at_days), "--out", str(model)]).exit_code == 0
    result = run(
        ["evaluate", str(path), "--at", iso(at_days), "--horizon", "90", "--churn-model", str(model), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    ids, churned, seen, since, interval = _independent(times, at, horizon)
    assert report["customers"] == len(ids) and report["churned"] == int(churned.sum())
    assert report["one_purchase_customers"] == sum(1 for s in seen if len(s) == 1)

    def check(name: str, decision: np.ndarray, score: np.ndarray | None) -> None:
        got = report["methods"][name]
        want = {
            "tp": int((decision & churned).sum()),
            "fp": int((decision & ~churned).sum()),
            "fn": int((~decision & churned).sum()),
            "tn": int((~decision & ~churned).sum()),
        }
        assert {k: got[k] for k in want} == want, name
        precision, recall = want["tp"] / (want["tp"] + want["fp"]), want["tp"] / (want["tp"] + want["fn"])
        assert got["precision"] == pytest.approx(precision) and got["recall"] == pytest.approx(recall)
        assert got["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
        if score is not None:
            assert got["auc"] == pytest.approx(_brute_auc(score, churned), abs=1e-12), name

    check("no_purchase_90d", since >= 90.0, since)
    check("gap_over_2x_interval", since > 2 * interval, since / interval)
    # The shipped rules: at_risk from max(30, 3 x rhythm) days quiet, lapsed from max(180, 6 x rhythm) (no NPS here).
    params = Params(**yaml.safe_load(model.read_text())["params"])
    inputs = inputs_at(times, at)
    risk = np.array([churn_risk(params, *inputs[c], horizon) for c in ids])
    check("rules", since >= np.maximum(30.0, 3 * interval), risk)
    assert report["methods"]["logistic"] is None
    assert report["churn_model"] == f"model.yaml@{iso(at_days)}"


def test_evaluate_judges_churn_yaml_with_the_model_given(history, tmp_path: Path) -> None:
    """churn.yaml: at_risk when churn_risk (90 days) >= 0.6 after 30 quiet days; lapsed as in the shipped rules."""
    path, times = history
    at_days = 360.0
    at = START.timestamp() + at_days * DAY
    model = tmp_path / "model.yaml"
    assert run(["fit", str(path), "--at", iso(at_days), "--out", str(model)]).exit_code == 0
    rules = Path(__file__).resolve().parents[3] / "streams" / "core" / "rules" / "churn.yaml"
    args = ["evaluate", str(path), "--at", iso(at_days), "--horizon", "90", "--json"]
    result = run([*args, "--rules", str(rules), "--churn-model", str(model)])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)["methods"]["rules"]
    ids, churned, _, since, interval = _independent(times, at, 90.0)
    params = Params(**yaml.safe_load(model.read_text())["params"])
    inputs = inputs_at(times, at)
    risk = np.array([churn_risk(params, *inputs[c], 90.0) for c in ids])
    decision = ((risk >= 0.6) & (since >= 30.0)) | (since >= np.maximum(180.0, 6 * interval))
    assert (got["tp"], got["fp"]) == (int((decision & churned).sum()), int((decision & ~churned).sum()))
    assert got["flagged"] == int(decision.sum())
    # The model may come from JOURNEY_CHURN_MODEL_FILE instead, as the worker's does.
    env = {"JOURNEY_CHURN_MODEL_FILE": str(model)}
    from_setting = CliRunner().invoke(journey, [*args, "--rules", str(rules)], env=env, catch_exceptions=False)
    assert json.loads(from_setting.output)["methods"]["rules"] == got
    # Without the model the churn signals have no value: only lapsed customers are flagged.
    bare = json.loads(run([*args, "--rules", str(rules)]).output)["methods"]["rules"]
    assert bare["flagged"] == int((since >= np.maximum(180.0, 6 * interval)).sum())


def test_evaluate_json_keys_are_stable(history) -> None:
    result = run(["evaluate", str(history[0]), "--at", iso(360.0), "--horizon", "60", "--json", "--logistic"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {
        "history", "at", "horizon_days", "rules", "churn_model", "records", "not_events",
        "before_earliest_event_time", "customers", "churned", "churn_rate", "one_purchase_customers",
        "one_purchase_interval_days", "logistic_training", "methods",
    }  # fmt: skip
    assert set(report["methods"]) == {"rules", "no_purchase_90d", "gap_over_2x_interval", "logistic"}
    keys = {"flagged", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "auc"}
    assert all(set(m) == keys for m in report["methods"].values())
    assert report["methods"]["rules"]["auc"] is None  # no model given: no score to rank by
    assert report["logistic_training"]["at"] == iso(300.0)
    assert 0.5 < report["methods"]["logistic"]["auc"] <= 1.0


def test_evaluate_prints_a_table(history) -> None:
    result = CliRunner().invoke(journey, ["evaluate", str(history[0]), "--at", iso(360.0)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for text in ("no purchase in 90 days", "gap > 2 x own interval", "rules: at_risk|lapsed", "first_rhythm_days"):
        assert text in result.output


# --- hostile inputs: each ends with exit code 2 and a sentence saying what to do


def _events(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = [
        json.dumps(
            {
                "event_id": f"e{i}",
                "customer_id": cid,
                "occurred_at": at,
                "stage": "purchase",
                "touchpoint": "purchase",
                "channel": "web",
                "payload": {"kind": "order", "amount": 5.0, "currency": "EUR"},
            }
        )
        for i, (cid, at) in enumerate(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("at", "says"),
    [
        ("2027-01-01", "no timezone"),
        ("yesterday", "not an ISO 8601 time"),
        ("2020-01-01T00:00:00Z", "before the first event"),
    ],
)
def test_fit_refuses_a_bad_at(tmp_path: Path, at: str, says: str) -> None:
    history = _events(tmp_path / "h.jsonl", [("a", "2026-01-01T00:00:00Z"), ("a", "2026-02-01T00:00:00Z")])
    result = CliRunner().invoke(journey, ["fit", str(history), "--at", at, "--out", str(tmp_path / "m.yaml")])
    assert result.exit_code == 2 and says in result.output, result.output
    assert not (tmp_path / "m.yaml").exists()


def test_fit_without_repeat_purchases_says_so(tmp_path: Path) -> None:
    history = _events(tmp_path / "h.jsonl", [(f"c{i}", f"2026-01-0{i + 1}T00:00:00Z") for i in range(5)])
    result = CliRunner().invoke(journey, ["fit", str(history), "--at", "2026-06-01T00:00:00Z"])
    assert result.exit_code == 2
    assert "none of them twice" in result.output and "later --at" in result.output


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'not json\n{"also": 1}\n', "none of the 2 records"),
        (b"\xff\xfe\x00binary\x00\x9c", "is an event"),
        (b"", "holds no event"),
        (b"customer_id,date,amount\n1,2026-01-01,3\n", "needs --mapping"),
    ],
    ids=["not-events", "binary", "empty", "csv-without-mapping"],
)
@pytest.mark.parametrize("command", ["fit", "evaluate"])
def test_unreadable_histories_are_refused(tmp_path: Path, content: bytes, says: str, command: str) -> None:
    history = tmp_path / "h.jsonl"
    history.write_bytes(content)
    result = CliRunner().invoke(journey, [command, str(history), "--at", "2026-06-01T00:00:00Z"])
    assert result.exit_code == 2 and says in result.output, result.output


def test_a_history_older_than_the_earliest_event_time_names_the_setting(tmp_path: Path) -> None:
    history = _events(tmp_path / "h.jsonl", [("a", "1997-01-01T00:00:00Z"), ("a", "1997-02-01T00:00:00Z")])
    result = CliRunner().invoke(journey, ["fit", str(history), "--at", "1997-06-01T00:00:00Z"])
    assert result.exit_code == 2 and "JOURNEY_EARLIEST_EVENT_TIME" in result.output


def test_fit_refuses_a_directory_as_out_and_a_bad_mapping(tmp_path: Path) -> None:
    history = _events(tmp_path / "h.jsonl", [("a", "2026-01-01T00:00:00Z"), ("a", "2026-02-01T00:00:00Z")])
    result = CliRunner().invoke(journey, ["fit", str(history), "--at", "2026-06-01T00:00:00Z", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output
    bad = tmp_path / "mapping.yaml"
    bad.write_text("format: csv\nnonsense: [\n")
    result = CliRunner().invoke(journey, ["fit", str(history), "--at", "2026-06-01T00:00:00Z", "--mapping", str(bad)])
    assert result.exit_code == 2 and "error:" in result.output


def test_evaluate_refuses_a_window_past_the_history_and_a_bad_horizon(history) -> None:
    result = CliRunner().invoke(journey, ["evaluate", str(history[0]), "--at", iso(470.0), "--horizon", "90"])
    assert result.exit_code == 2 and "choose --at on or before" in result.output
    for horizon in ("0", "-5", "nan", "inf"):
        result = CliRunner().invoke(journey, ["evaluate", str(history[0]), "--at", iso(300.0), "--horizon", horizon])
        assert result.exit_code == 2 and "--horizon must be a positive number" in result.output, horizon


@pytest.mark.parametrize(
    "text",
    ["kind: gbm\n", "kind: bgnbd\nparams: {r: -1, alpha: 1, a: 1, b: 1}\n", "- [unbalanced\n"],
    ids=["kind", "negative", "not-yaml"],
)
def test_evaluate_refuses_a_bad_model_file(history, tmp_path: Path, text: str) -> None:
    model = tmp_path / "bad.yaml"
    model.write_text(text)
    result = CliRunner().invoke(journey, ["evaluate", str(history[0]), "--at", iso(300.0), "--churn-model", str(model)])
    assert result.exit_code == 2 and "--churn-model" in result.output, result.output


def test_logistic_needs_buyers_one_horizon_earlier(history) -> None:
    result = CliRunner().invoke(
        journey, ["evaluate", str(history[0]), "--at", iso(100.0), "--horizon", "200", "--logistic"]
    )
    assert result.exit_code == 2 and "--logistic trains on" in result.output


# --- the pieces


def test_roc_auc_is_the_pairwise_share_with_ties_halved() -> None:
    rng = np.random.default_rng(8)
    score = rng.integers(0, 6, 400).astype(float)  # many ties
    score[:5] = math.inf
    truth = rng.random(400) < 0.3
    assert roc_auc(score, truth) == pytest.approx(_brute_auc(score, truth), abs=1e-12)
    assert roc_auc(score, np.zeros(400, dtype=bool)) is None


def test_scores_with_nobody_flagged_have_no_precision() -> None:
    got = scores([False, False], [True, False])
    assert (got.precision, got.recall, got.f1, got.flagged) == (None, 0.0, None, 0)


def test_the_closed_form_gradient_matches_central_differences() -> None:
    x, t_x, T = simulate(CDNOW_DAYS, np.random.default_rng(4).uniform(100, 400, 3_000), seed=6)
    theta = np.log([0.3, 25.0, 0.6, 2.0])
    _, gradient = mean_log_likelihood_and_gradient(theta, x, t_x, T)
    for k in range(4):
        step = np.zeros(4)
        step[k] = 1e-6
        up = mean_log_likelihood_and_gradient(theta + step, x, t_x, T)[0]
        down = mean_log_likelihood_and_gradient(theta - step, x, t_x, T)[0]
        assert gradient[k] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-9)


def test_fit_with_and_without_the_gradient_agree() -> None:
    x, t_x, T = simulate(CDNOW_DAYS, np.random.default_rng(5).uniform(100, 400, 5_000), seed=7)
    analytic, numeric = fit_bgnbd(x, t_x, T), fit_bgnbd(x, t_x, T, gradient=False)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(analytic.params, name) == pytest.approx(getattr(numeric.params, name), rel=1e-3)
    assert analytic.log_likelihood >= numeric.log_likelihood - 1e-6


def test_fit_reads_an_order_export_through_a_mapping(tmp_path: Path) -> None:
    """A CDNOW-style CSV through the shipped `orders` mapping: one purchase per row, two on one day count twice."""
    export = tmp_path / "orders.csv"
    export.write_text(
        "customer_id,date,quantity,amount\n"
        "00001,2026-01-01,1,10.00\n00001,2026-01-01,2,20.00\n00001,2026-03-01,1,5.00\n"
        "00002,2026-01-05,1,7.50\n00002,2026-02-05,1,7.50\n"
        "00003,2026-02-01,1,3.00\n"
        "00004,2026-07-01,1,3.00\n"  # after --at: not a customer of the fit
    )
    out = tmp_path / "model.yaml"
    result = run(["fit", str(export), "--mapping", "orders", "--at", "2026-06-01T00:00:00Z", "--out", str(out)])
    assert result.exit_code in (0, 1), result.output  # three customers may not pin the optimum down
    document = yaml.safe_load(out.read_text())
    assert document["fitted_on"]["customers"] == 3 and document["quality"]["n"] == 3
    # x = purchases - 1 from the replayed states: 2, 1 and 0 repeat purchases.
    x, t_x, T = np.array([2.0, 1.0, 0.0]), np.array([59.0, 31.0, 0.0]), np.array([151.0, 147.0, 120.0])
    direct = fit_bgnbd(x, t_x, T)
    assert document["params"]["r"] == pytest.approx(direct.params.r, rel=1e-6)


# --- the logistic model as a model file


def test_fit_kind_logistic_writes_a_model_evaluate_scores_as_its_own_training(history, tmp_path: Path) -> None:
    from streams.churn.logistic import FEATURES, GROW_WITH_TIME
    from streams.core.churn.modelfile import ChurnModelError, load_churn_model

    path, times = history
    out = tmp_path / "logistic.yaml"
    fit = run(["fit", str(path), "--at", iso(360.0), "--kind", "logistic", "--horizon", "60", "--out", str(out)])
    assert fit.exit_code == 0, fit.output
    document = yaml.safe_load(out.read_text())
    assert document["kind"] == "logistic" and document["horizon_days"] == 60.0
    assert list(document["weights"]) == list(FEATURES)
    assert all(document["weights"][name] >= 0 for name in GROW_WITH_TIME)  # the score only grows while quiet
    # Trained on the buyers by day 300, labelled by their purchases in (300, 360], counted here.
    ids, churned, *_ = _independent(times, START.timestamp() + 300.0 * DAY, 60.0)
    assert document["trained"] == {
        "features_at": iso(300.0),
        "labels_until": iso(360.0),
        "customers": len(ids),
        "churned": int(churned.sum()),
    }
    args = ["evaluate", str(path), "--at", iso(360.0), "--horizon", "60", "--json"]
    from_file = json.loads(run([*args, "--churn-model", str(out)]).output)
    trained_here = json.loads(run([*args, "--logistic"]).output)
    assert from_file["methods"]["logistic"] == pytest.approx(trained_here["methods"]["logistic"], rel=1e-9)
    assert from_file["churn_model"] == f"logistic.yaml@{iso(360.0)}"
    # The live churn signals read BG/NBD files only: the worker's loader refuses this one, naming the kind.
    with pytest.raises(ChurnModelError, match="kind"):
        load_churn_model(out)
    for bad, says in (
        (["--horizon", "90"], "trained for a 60-day horizon"),
        (["--horizon", "60", "--logistic"], "drop --logistic"),
    ):
        result = CliRunner().invoke(
            journey, ["evaluate", str(path), "--at", iso(360.0), "--churn-model", str(out), *bad]
        )
        assert result.exit_code == 2 and says in result.output, result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text(out.read_text().replace("log_returns:", "log_refunds:"))
    result = CliRunner().invoke(journey, [*args[:-1], "--churn-model", str(broken)])
    assert result.exit_code == 2 and "must name exactly these features" in result.output, result.output


def test_fit_kind_logistic_needs_both_outcomes_one_horizon_earlier(history) -> None:
    result = CliRunner().invoke(
        journey, ["fit", str(history[0]), "--at", iso(100.0), "--kind", "logistic", "--horizon", "200"]
    )
    assert result.exit_code == 2 and "--at minus --horizon" in result.output, result.output


def test_fit_ignores_the_churn_model_setting_it_may_be_replacing(history, tmp_path: Path) -> None:
    broken = tmp_path / "old-model.yaml"
    broken.write_text("kind: bgnbd\nparams: {r: -1}\n")
    out = tmp_path / "new.yaml"
    result = CliRunner().invoke(
        journey,
        ["fit", str(history[0]), "--at", iso(300.0), "--out", str(out)],
        env={"JOURNEY_CHURN_MODEL_FILE": str(broken)},
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text())["kind"] == "bgnbd"
