"""Checks on the suite itself, made when it is collected.

A test that starts the real broker and redis-server (through the `stack` or `deploy` fixtures of
tests/integration/conftest.py) must be marked `integration`, so that `-m "not integration"` runs
without them; and no test under tests/unit may need them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: The fixtures that start the local stack.
STACK_FIXTURES = frozenset({"stack", "deploy"})
UNIT = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked, in_unit = [], []
    for item in items:
        if not STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            continue
        if item.get_closest_marker("integration") is None:
            unmarked.append(item.nodeid)
        if UNIT in Path(item.path).resolve().parents:
            in_unit.append(item.nodeid)
    problems = []
    if unmarked:
        problems.append(
            "these tests start the stack but are not marked integration (pytestmark): " + ", ".join(unmarked)
        )
    if in_unit:
        problems.append("these unit tests start the stack (move them to tests/integration): " + ", ".join(in_unit))
    if problems:
        raise pytest.UsageError("\n".join(problems))
