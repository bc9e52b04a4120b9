"""The churn model in the product: JOURNEY_CHURN_MODEL_FILE, the start-up checks, `journey replay --churn-model`,
`journey explain` and the profile route."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from journeys import alice
from rich.console import Console

from streams.cli import main as journey
from streams.core.churn.bgnbd import Params
from streams.core.churn.fit import Fit
from streams.core.churn.modelfile import ChurnModelError, to_document, write_model
from streams.core.model import load_model
from streams.core.rules.compiled import CHURN_RULES
from streams.explain import render_customer
from streams.live.worker import load_model_or_exit
from streams.local.sample import SAMPLE_FILE
from streams.profile import build_profile
from streams.settings import Settings

OPENAPI = Path(__file__).resolve().parents[3] / "streams" / "http" / "openapi.yaml"
UNTIL = "2027-01-01T00:00:00Z"


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    fit = Fit(Params(0.243, 30.9, 0.793, 2.426), -100.0, True, 50, 10, "ok")
    path = tmp_path / "churn-model.yaml"
    write_model(path, to_document(fit, "orders.jsonl", 50, datetime(2026, 1, 1, tzinfo=UTC)))
    return path


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("JOURNEY_RULES_FILE", "JOURNEY_PLAYBOOK_FILE", "JOURNEY_CHURN_MODEL_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_the_setting_loads_the_model_into_the_rules(model_file, clean_env, monkeypatch):
    monkeypatch.setenv("JOURNEY_CHURN_MODEL_FILE", str(model_file))
    monkeypatch.setenv("JOURNEY_RULES_FILE", str(CHURN_RULES))
    model = Settings().load_model()
    assert model.rules.churn is not None and model.rules.churn.label == "churn-model.yaml@2026-01-01T00:00:00Z"
    assert model.rules.churn_signals == {"churn_risk"}
    monkeypatch.setenv("JOURNEY_CHURN_MODEL_FILE", "")  # as compose and Kubernetes pass an unset optional
    assert Settings().churn_model_file is None and Settings().load_model().rules.churn is None


def test_a_bad_model_file_stops_the_start_naming_the_line(model_file, clean_env, monkeypatch, caplog):
    model_file.write_text(model_file.read_text().replace("kind: bgnbd", "kind: magic"))
    monkeypatch.setenv("JOURNEY_CHURN_MODEL_FILE", str(model_file))
    with pytest.raises(ChurnModelError, match=r"churn-model\.yaml line 1: kind"):
        Settings().load_model()
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        load_model_or_exit(Settings())
    assert stopped.value.code == 2
    assert "not starting: churn-model.yaml line 1: kind" in caplog.text


def test_rules_reading_a_churn_signal_without_a_model_warn_once(clean_env, monkeypatch, caplog):
    monkeypatch.setenv("JOURNEY_RULES_FILE", str(CHURN_RULES))
    with caplog.at_level(logging.WARNING, logger="streams.settings"):
        Settings().load_model()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "churn_risk" in warnings[0].getMessage()
    assert "JOURNEY_CHURN_MODEL_FILE" in warnings[0].getMessage()
    caplog.clear()
    monkeypatch.delenv("JOURNEY_RULES_FILE")
    with caplog.at_level(logging.WARNING, logger="streams.settings"):
        Settings().load_model()  # the default rules read no churn signal: nothing to warn of
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_replay_with_a_churn_model_decides_at_risk_by_the_score(model_file, tmp_path, clean_env):
    out = tmp_path / "out"
    args = ["replay", str(SAMPLE_FILE), "--until", UNTIL, "--out", str(out), "--rules", str(CHURN_RULES)]
    result = CliRunner().invoke(journey, [*args, "--churn-model", str(model_file)])
    assert result.exit_code == 0, result.output
    changes = [json.loads(line) for line in (out / "changes.jsonl").read_text().splitlines()]
    at_risk = [c for c in changes if c["to"] == "at_risk" and "churn_risk" in c["reason"]["evidence"]]
    assert at_risk, "no customer turned at_risk"
    for change in at_risk:  # by the score, or a regular turned detractor (the rule's other branch)
        evidence = change["reason"]["evidence"]
        assert evidence["churn_risk"] >= 0.6 or (evidence["purchases"] >= 3 and evidence["latest_nps"] <= 6)
        assert evidence["churn_model"] == "churn-model.yaml@2026-01-01T00:00:00Z"
        assert evidence["churn_horizon_days"] == 90.0
    assert [c for c in at_risk if c["reason"]["evidence"]["churn_risk"] >= 0.6 and c["caused_by"].startswith("inact")]
    without = CliRunner().invoke(journey, [*args[:5], str(tmp_path / "plain"), "--rules", str(CHURN_RULES)])
    assert without.exit_code == 0, without.output
    plain = [json.loads(line) for line in (tmp_path / "plain" / "changes.jsonl").read_text().splitlines()]
    assert not [c for c in plain if c["reason"]["evidence"].get("churn_risk") is not None]
    refused = CliRunner().invoke(journey, ["replay", str(SAMPLE_FILE), "--to-kafka", "--churn-model", str(model_file)])
    assert refused.exit_code == 2 and "offline replay only" in refused.output


def test_replay_refuses_a_bad_model_file_before_reading(model_file, tmp_path, clean_env):
    model_file.write_text(model_file.read_text().replace("r: 0.243", "r: -1"))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        journey, ["replay", str(SAMPLE_FILE), "--out", str(out), "--churn-model", str(model_file)]
    )
    assert result.exit_code == 2 and "churn-model.yaml line 3: params.r" in result.output
    assert not (out / "changes.jsonl").exists()


def _churn_alice(model_file: Path):
    from streams.core.churn.modelfile import load_churn_model

    return alice(load_model(CHURN_RULES, churn=load_churn_model(model_file)))


def test_the_profile_shows_the_score_and_its_inputs(model_file):
    state, history, model, _ = _churn_alice(model_file)
    profile = build_profile(state, history, model)
    churn = profile["churn"]
    assert churn["model"] == "churn-model.yaml@2026-01-01T00:00:00Z" and churn["horizon_days"] == 90.0
    assert churn["x"] == 3 and churn["t_x"] == pytest.approx(89.0) and churn["T"] == pytest.approx(89.0)
    assert 0 < churn["churn_risk"] < 1 and 0 < churn["p_alive"] <= 1 and churn["expected_purchases"] > 0
    openapi = yaml.safe_load(OPENAPI.read_text())
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "#/components/schemas/Profile"}
    validator = jsonschema.Draft202012Validator({**schema, "components": openapi["components"]})
    assert validator.is_valid(profile), [e.message for e in validator.iter_errors(profile)]
    assert not validator.is_valid({**profile, "churn": {**churn, "x": "three"}})
    plain_state, plain_history, plain_model, _ = alice()
    assert build_profile(plain_state, plain_history, plain_model)["churn"] is None


def test_explain_shows_the_score_and_its_inputs(model_file):
    state, history, model, _ = _churn_alice(model_file)
    console = Console(file=io.StringIO(), width=240, color_system=None, record=True)
    render_customer(console, state, history, model)
    text = console.export_text()
    line = next(line for line in text.splitlines() if line.startswith("churn model"))
    view = model.rules.churn_view(state, state.checked_at)
    assert view is not None
    assert f"churn_risk {view['churn_risk']:.3f} (no purchase within 90 days)" in line
    assert "churn-model.yaml@2026-01-01T00:00:00Z" in line and "x=3 repeat purchases" in line
    assert "t_x=89.000 d" in line and "T=89.000 d" in line


def test_both_engines_refuse_to_start_on_a_bad_model_file(model_file, clean_env, monkeypatch, caplog):
    """Before anything connects: exit code 2, one error line naming the file's line."""
    from streams.live import faust_app, worker

    model_file.write_text(model_file.read_text().replace("alpha: 30.9", "alpha: .inf"))
    settings = Settings(churn_model_file=model_file, http_port=0)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        worker.run_worker(settings)
    assert stopped.value.code == 2 and "churn-model.yaml line 4: params.alpha" in caplog.text

    async def no_problem(settings):  # the broker check comes first in the Faust start; none here
        return None

    monkeypatch.setattr(faust_app.security, "diagnose", no_problem)
    caplog.clear()
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        faust_app.run_faust_worker(settings)
    assert stopped.value.code == 2 and "churn-model.yaml line 4: params.alpha" in caplog.text
