"""trainer-hpsearch without extras: every backend is registered and names its extra."""

from trainer_core import HP_SEARCH_BACKENDS_GROUP, MissingExtraError, available_plugins
from trainer_hpsearch import OptunaBackend, RayTuneBackend, SigOptBackend

assert set(available_plugins(HP_SEARCH_BACKENDS_GROUP)) == {"optuna", "ray", "sigopt"}
backends = [("optuna", OptunaBackend), ("ray", RayTuneBackend), ("sigopt", SigOptBackend)]
for extra, backend in backends:
    assert not backend().is_available()
    try:
        backend().ensure_available()
    except MissingExtraError as error:
        assert f"pip install 'trainer-hpsearch[{extra}]'" in str(error), error
        assert f"pip install 'trainer[{extra}]'" in str(error), error
    else:
        raise AssertionError(f"{backend.__name__} without its library must fail")
print("trainer-hpsearch: ok")
