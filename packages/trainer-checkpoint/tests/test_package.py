"""trainer-checkpoint installs and imports on its own, with only what it declares."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import distribution


def test_package_imports_and_is_typed() -> None:
    import trainer_checkpoint

    assert (__import__("pathlib").Path(trainer_checkpoint.__file__).parent / "py.typed").exists()


def test_distribution_metadata_names_the_package() -> None:
    assert distribution("trainer-checkpoint").metadata["Name"] == "trainer-checkpoint"


def test_import_loads_no_optional_library() -> None:
    # torch, numpy and safetensors are declared; transformers is only ever duck-typed.
    code = "import sys, trainer_checkpoint; print('transformers' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
