"""The README is the user's manual: it must document every setting and hold the CI's test command."""

from pathlib import Path

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented():
    missing = [f"JOURNEY_{name.upper()}" for name in Settings.model_fields if f"JOURNEY_{name.upper()}" not in README]
    assert not missing, f"settings missing from the README: {missing}"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if "pytest" in line and not line.startswith("#"))
    assert command.strip() in README
