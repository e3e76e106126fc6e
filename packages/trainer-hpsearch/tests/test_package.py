"""trainer-hpsearch installs and imports on its own, with only what it declares."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import distribution


def test_package_imports_and_is_typed() -> None:
    import trainer_hpsearch

    assert (__import__("pathlib").Path(trainer_hpsearch.__file__).parent / "py.typed").exists()


def test_distribution_metadata_names_the_package() -> None:
    assert distribution("trainer-hpsearch").metadata["Name"] == "trainer-hpsearch"


def test_import_does_not_load_torch_unless_declared() -> None:
    code = "import sys, trainer_hpsearch; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
