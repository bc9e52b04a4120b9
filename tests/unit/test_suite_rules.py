"""Rules the suite keeps for itself: every test has a time limit, and the stack tests can be left out."""

from __future__ import annotations

import pytest


def test_every_test_has_a_time_limit(pytestconfig: pytest.Config):
    """pytest-timeout is active and set (pyproject.toml): a hang fails its test instead of holding CI."""
    assert pytestconfig.pluginmanager.hasplugin("timeout"), "pytest-timeout is not installed: pip install -e '.[test]'"
    limit = float(pytestconfig.getini("timeout"))
    assert 0 < limit <= 600


def test_the_integration_marker_is_declared(pytestconfig: pytest.Config):
    markers = [line.split(":")[0] for line in pytestconfig.getini("markers")]
    assert "integration" in markers
