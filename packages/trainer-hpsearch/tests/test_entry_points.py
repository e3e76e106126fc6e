"""Each backend name resolves through the real entry-point loader to a SearchBackend."""

from __future__ import annotations

import pytest

import trainer_hpsearch
from trainer_core import HP_SEARCH_BACKENDS_GROUP, available_plugins, load_plugin
from trainer_testing.search import check_search_backend_contract


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("optuna", trainer_hpsearch.OptunaBackend),
        ("ray", trainer_hpsearch.RayTuneBackend),
        ("sigopt", trainer_hpsearch.SigOptBackend),
    ],
)
def test_name_loads_the_backend_class(name: str, cls: type) -> None:
    assert available_plugins(HP_SEARCH_BACKENDS_GROUP)[name] == "trainer-hpsearch"
    loaded = load_plugin(HP_SEARCH_BACKENDS_GROUP, name)
    assert loaded is cls
    backend = loaded()
    check_search_backend_contract(backend)
    assert backend.name == name
    assert backend.is_available()  # the dev group installs every extra


def test_exports_are_listed() -> None:
    for name in trainer_hpsearch.__all__:
        assert hasattr(trainer_hpsearch, name)
