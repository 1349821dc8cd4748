"""Skips that CI turns into failures.

A test that needs something the machine may lack (Chromium, npm packages) is
skipped saying what is missing and how to get it; CI sets the matching
``NEWSGRAPH_REQUIRE_*=1`` so that a missing install step fails the run
instead of silently skipping what it should prove.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(requirement: str, reason: str) -> NoReturn:
    """Skip for ``reason``, or fail if ``NEWSGRAPH_REQUIRE_<requirement>=1``."""
    variable = f"NEWSGRAPH_REQUIRE_{requirement}"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{variable}=1 but {reason}")
    pytest.skip(reason)
