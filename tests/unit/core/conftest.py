"""Hypothesis profiles for the property-based tests of hostile input (`test_hostile_input.py`).

`HYPOTHESIS_PROFILE=ci` (the default): derandomised, a bounded number of examples, no example
database, so every run searches the same inputs and stays within seconds. `long`: randomised,
many more examples, for a deeper search on a developer's machine.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("ci", max_examples=300, derandomize=True, database=None, print_blob=True, **_COMMON)
settings.register_profile("long", max_examples=5000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
