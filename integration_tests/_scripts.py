"""The worker scripts of this folder, loaded as modules for the helpers they hold.

``test_distributed_worker.py`` and ``checkpoint_worker.py`` are what the launchers start,
and also where the launch helpers and the shared test model live. Loading them by path
keeps them plain scripts (they import their neighbours as top-level modules, as a
launched script does) while the tests use the same code.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).parent


def load_script(file_name: str) -> ModuleType:
    """``file_name`` (a script in this folder) executed as a module of its own name, with
    this folder importable while it runs, as it is for a launched script."""
    spec = importlib.util.spec_from_file_location(Path(file_name).stem, HERE / file_name)
    if spec is None or spec.loader is None:
        raise ImportError(f"{HERE / file_name} cannot be loaded as a module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(HERE))
    return module
