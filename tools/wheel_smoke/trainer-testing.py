"""trainer-testing without extras: the package and its stand-in servers import without
torch; the torch helpers say what is missing."""

import importlib.util

import trainer_testing

assert importlib.util.find_spec("torch") is None
with trainer_testing.LocalHubServer() as hub:
    assert hub.url.startswith("http://127.0.0.1:")
try:
    import trainer_testing.models
except ImportError as error:
    assert "torch" in str(error), error
else:
    raise AssertionError("trainer_testing.models needs the torch extra")
print("trainer-testing: ok")
