"""Test helpers: tiny models, datasets, fakes and contract suites for the trainer ports.

The torch-backed helpers live in :mod:`trainer_testing.models` (install the ``torch``
extra); importing this package itself needs only trainer-core.
"""

from __future__ import annotations

from trainer_testing.hub_server import DEFAULT_HUB_TOKEN, DEFAULT_HUB_USER, LocalHubServer
from trainer_testing.sigopt_server import LocalSigOptServer

__all__: list[str] = [
    "DEFAULT_HUB_TOKEN",
    "DEFAULT_HUB_USER",
    "LocalHubServer",
    "LocalSigOptServer",
]
