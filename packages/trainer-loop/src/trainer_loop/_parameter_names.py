"""``get_parameter_names`` and ``ALL_LAYERNORM_LAYERS``: what ``create_optimizer`` overrides use.

Many subclasses (LLaVA and its forks, multimodal trainers) override ``create_optimizer``
and rebuild the reference's weight-decay groups themselves with
``get_parameter_names(model, ALL_LAYERNORM_LAYERS)`` minus the ``bias`` names; these give
them the same lists as the reference, so their parameter groups are unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from torch import nn

# The layer types whose parameters take no weight decay. A list, as in the reference,
# because model code appends its own norm classes to it.
ALL_LAYERNORM_LAYERS: list[type[nn.Module]] = [nn.LayerNorm]


def get_parameter_names(
    model: nn.Module,
    forbidden_layer_types: Iterable[type[nn.Module]],
    forbidden_layer_names: Iterable[str] | None = None,
) -> list[str]:
    """Names of the parameters that no submodule of a forbidden type holds.

    Args:
        model: The module whose parameters are listed; its own type is not checked,
            only its submodules'.
        forbidden_layer_types: Submodules of these types (and everything inside them)
            are left out.
        forbidden_layer_names: Regular expressions (transformers 5); a name whose
            lower-cased form matches any of them is left out.

    Returns:
        Full parameter names, each submodule's before the module's own parameters; a
        parameter shared by two submodules (tied weights) is listed under both names.
        Only names of real parameters matter to a caller building parameter groups.
    """
    kinds = tuple(forbidden_layer_types)
    patterns = [re.compile(pattern) for pattern in forbidden_layer_names or ()]
    names: list[str] = []
    for child_name, child in model.named_children():
        if not isinstance(child, kinds):
            names.extend(f"{child_name}.{name}" for name in get_parameter_names(child, kinds))
    # Every registered name, a None one too (``bias=False`` layers register
    # ``bias=None``), as the reference lists them: the lists then compare equal.
    names.extend(model._parameters)
    return [name for name in names if not any(p.search(name.lower()) for p in patterns)]
