"""Test helpers: tiny models, datasets, fakes and contract suites for the trainer ports.

The torch-backed helpers live in :mod:`trainer_testing.models` (install the ``torch``
extra); importing this package itself needs only trainer-core.
"""

from __future__ import annotations

__all__: list[str] = []
