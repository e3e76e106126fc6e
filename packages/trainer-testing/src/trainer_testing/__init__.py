"""Test helpers: tiny models, datasets, fakes and contract suites for the trainer ports."""

from __future__ import annotations

__all__: list[str] = []
