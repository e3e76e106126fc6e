"""Test helpers: tiny models, datasets, fakes and contract suites for the trainer ports.

The torch-backed helpers live in :mod:`trainer_testing.models` and the contract suites
of the checkpoint store and the runtime in :mod:`trainer_testing.checkpoint_contract` and
:mod:`trainer_testing.runtime_contract` (install the ``torch`` extra); the reporter's is
:mod:`trainer_testing.reporter_contract`, the search backend's
:func:`trainer_testing.search.check_search_backend_contract`. Importing this package
itself needs only trainer-core.
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
