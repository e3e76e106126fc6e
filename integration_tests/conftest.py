"""Shared fixtures for cross-package tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def tmp_output(tmp_path) -> str:
    return str(tmp_path / "output")
