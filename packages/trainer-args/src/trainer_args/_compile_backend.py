"""Checking ``torch_compile_backend`` when the arguments are built, not at the first step.

torch only resolves a backend name when the compiled model first runs, so a typo would
pass construction and stop the run after the data and the model were loaded. The names
torch lists live in its compiler package (``torch._dynamo``), which takes seconds to
import; the usual names are therefore accepted without importing anything, and only
another name is looked up, when torch is installed.
"""

from __future__ import annotations

from typing import Any

from trainer_args._messages import invalid, wrong_type

COMMON_COMPILE_BACKENDS: frozenset[str] = frozenset(
    {"inductor", "eager", "aot_eager", "cudagraphs"}
)
"""Backends every supported torch release registers: accepted without importing torch."""


def check_compile_backend(args: Any) -> None:
    """Refuse a ``torch_compile_backend`` torch does not know, suggesting the closest.

    Skipped when torch is not installed (the arguments may be built on a machine that
    only launches the run). A backend registered with ``torch._dynamo.register_backend``
    or through the ``torch_dynamo_backends`` entry points is known once registered.
    """
    name = args.torch_compile_backend
    if name is None or name in COMMON_COMPILE_BACKENDS:
        return
    if not isinstance(name, str):
        raise wrong_type("torch_compile_backend", name, "a backend name (str), e.g. 'inductor'")
    registered = _registered_backends()
    if registered is None or name in registered[0]:
        return
    import difflib

    every, listed = registered
    close = difflib.get_close_matches(name, every, n=1)
    hint = f"Did you mean {close[0]!r}? " if close else ""
    raise invalid(
        "torch_compile_backend",
        name,
        f"a backend torch.compile knows, e.g. {', '.join(listed)}",
        f"{hint}A custom backend must be registered (torch._dynamo.register_backend) "
        "before the arguments are built.",
    )


def _registered_backends() -> tuple[list[str], list[str]] | None:
    """Every backend name torch registers (debug and experimental ones included), and
    those it lists by default (the ones worth naming); None without torch."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    try:
        from torch._dynamo import list_backends
    except ImportError:  # a torch build without the compiler: nothing to check against
        return None
    return list_backends(exclude_tags=()), sorted({"eager", "aot_eager", *list_backends()})
