"""The churn model file: a good one loads (YAML or JSON), a hostile one is refused naming the line and the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.core.churn.bgnbd import Params
from streams.core.churn.fit import Fit
from streams.core.churn.modelfile import ChurnModelError, load_churn_model, to_document, write_model

GOOD = """\
kind: bgnbd
params:
  r: 0.243
  alpha: 30.9
  a: 0.793
  b: 2.426
fitted_on:
  file: orders.csv
  customers: 20000
  time_unit: days
at: "2026-01-01T00:00:00Z"
quality:
  log_likelihood: -9582.4
  converged: true
  n: 20000
"""


def write(tmp_path: Path, text: str, name: str = "model.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_yaml_file_loads(tmp_path):
    model = load_churn_model(write(tmp_path, GOOD))
    assert model.params == Params(0.243, 30.9, 0.793, 2.426)
    assert model.name == "model.yaml" and model.at == "2026-01-01T00:00:00Z"
    assert model.label == "model.yaml@2026-01-01T00:00:00Z"


def test_what_fit_writes_loads_back_as_yaml_and_as_json(tmp_path):
    fit = Fit(Params(0.5, 10.0, 0.5, 1.5), -1234.5, True, 300, 40, "ok")
    at = datetime(2026, 6, 30, tzinfo=UTC)
    document = to_document(fit, "/data/orders.jsonl", 300, at)
    for name in ("m.yaml", "m.json"):
        write_model(tmp_path / name, document)
        model = load_churn_model(tmp_path / name)
        assert model.params == fit.params and model.at == "2026-06-30T00:00:00Z" and model.name == name
    assert json.loads((tmp_path / "m.json").read_text())["kind"] == "bgnbd"


def test_an_offset_date_is_kept_as_written_in_utc(tmp_path):
    model = load_churn_model(write(tmp_path, GOOD.replace('"2026-01-01T00:00:00Z"', '"2026-01-01T02:00:00+02:00"')))
    assert model.at == "2026-01-01T02:00:00+02:00"  # the instant the file states, with its offset


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (("kind: bgnbd", "kind: logistic"), 1, "kind"),
        (("  r: 0.243", "  r: -0.243"), 3, "positive finite"),
        (("  alpha: 30.9", "  alpha: 0"), 4, "positive finite"),
        (("  a: 0.793", "  a: .nan"), 5, "positive finite"),
        (("  b: 2.426", "  b: .inf"), 6, "positive finite"),
        (("  b: 2.426", "  b: 1e400"), 6, "positive finite"),
        (("  b: 2.426", "  b: lots"), 6, "number"),
        (("  a: 0.793\n", ""), 2, "a"),
        (("  time_unit: days", "  time_unit: weeks"), 10, "days"),
        (('at: "2026-01-01T00:00:00Z"', 'at: "2026-01-01T00:00:00"'), 11, "timezone"),
        (('at: "2026-01-01T00:00:00Z"\n', ""), 1, "at"),
        (("  n: 20000", "  n: 20000\n  extra: 1"), 16, "extra"),
        (("kind: bgnbd", "kind: bgnbd\nnote: hi"), 2, "note"),
        (("  customers: 20000", "  customers: -5"), 9, "customers"),
    ],
)
def test_a_hostile_file_is_refused_naming_the_line_and_field(tmp_path, change, line, words):
    old, new = change
    assert old in GOOD
    with pytest.raises(ChurnModelError) as caught:
        load_churn_model(write(tmp_path, GOOD.replace(old, new, 1)))
    message = str(caught.value)
    assert f"model.yaml line {line}" in message, message
    assert words in message, message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "expected a mapping"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("kind: [unclosed\n", "not valid YAML"),
        ("kind: bgnbd\nkind: bgnbd\n", "line 2"),
        ("!!python/object:os.system {}\n", "not valid YAML"),
    ],
)
def test_a_file_that_is_not_a_model_is_refused(tmp_path, text, words):
    with pytest.raises(ChurnModelError, match=words.replace("[", r"\[")):
        load_churn_model(write(tmp_path, text))


def test_a_json_file_with_a_non_finite_parameter_is_refused(tmp_path):
    document = json.loads(
        json.dumps(to_document(Fit(Params(1, 2, 3, 4), -1.0, True, 2, 1, "ok"), "h", 2, datetime.now(UTC)))
    )
    document["params"]["alpha"] = "Infinity"
    with pytest.raises(ChurnModelError, match="alpha"):
        load_churn_model(write(tmp_path, json.dumps(document, indent=2), "m.json"))
    with pytest.raises(ChurnModelError, match="cannot read"):
        load_churn_model(tmp_path / "missing.yaml")
