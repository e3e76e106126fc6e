"""XLA FSDP's sharded state: its layout, and conversions to full tensors and back (plain torch).

torch_xla's ``XlaFullyShardedDataParallel`` keeps each parameter (or each flattened group
of parameters, with ``flatten_parameters``) as one shard per process, registered on the
wrapper under the name ``_fsdp_shard`` + the original name with every ``.`` replaced by
``_FSDP_SHARD_SEPARATOR_``. A shard is a slice of the parameter flattened (or, with
``shard_param_on_dim_0``, of its first dimension) after zero-padding it to a multiple of
the number of processes, so concatenating the shards of all processes in rank order and
dropping the padding gives the parameter back. ``wrapper.get_shard_metadata()`` records
what is needed for that: each shard's original name and size (``shard_info``, per wrapper
module), how a flattened group splits into parameters (``flatten_info``) and the dtypes
buffers had before the wrapper cast them (``buffer_info``). Key names carry the wrapper's
own modules (``_fsdp_wrapped_module.``, and ``_fpw_module.`` outside state dicts), which
full names drop.

This module reads that layout without torch_xla (the layout was taken from torch_xla 2.x's
source; the XLA runtime itself could not be run where this was written). A model's state
takes three forms here:

* *local*: one process's ``wrapper.state_dict()`` (its shards, under the wrapper's keys);
* *gathered*: the shards of all processes concatenated, padding dropped, under the same
  keys. It does not depend on the number of processes, so it reshards onto any number;
* *full*: the user's parameter names and shapes, what ``save_model`` writes.

Optimizer state follows its parameters: tensors shaped like a shard are sharded the same
way, anything else (``step``) is the same on every process.

Per-process checkpoint files use the reference's names, ``rank{r}-of-{n}-pytorch_model.bin``
(``{"model": local state, "shard_metadata": metadata}``) and
``rank{r}-of-{n}-optimizer.pt``; :func:`consolidate_xla_fsdp_checkpoint` turns a folder of
them into full weights.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

SHARD_PREFIX = "_fsdp_shard"
_WRAPPER_SEGMENTS = ("_fsdp_wrapped_module.", "_fpw_module.")
MODEL_FILE = "rank{rank}-of-{world}-pytorch_model.bin"
OPTIMIZER_FILE = "rank{rank}-of-{world}-optimizer.pt"
_RANK_FILE = re.compile(r"^rank(\d+)-of-(\d+)-(pytorch_model\.bin|optimizer\.pt)$")
_KIND_SUFFIX = {"model": "pytorch_model.bin", "optimizer": "optimizer.pt"}

Concat = Callable[[list[torch.Tensor]], list[torch.Tensor] | None]
"""Given this process's shards (in an order every process shares), return each one
concatenated with the same shard of every other process, in rank order; or ``None`` on a
process that takes part in the collective without keeping its result."""


def plain_name(name: str) -> str:
    """``name`` without the wrapper's own module segments: the user's parameter name."""
    for segment in _WRAPPER_SEGMENTS:
        name = name.replace(segment, "")
    return name


def state_key(parameter_name: str) -> str:
    """The state-dict key of a wrapper parameter named ``parameter_name``.

    The flattening wrapper drops its ``_fpw_module.`` segment from state dicts (and from
    the shard metadata), but ``named_parameters()`` keeps it.
    """
    return parameter_name.replace("_fpw_module.", "")


def split_shard_key(key: str) -> tuple[str, str] | None:
    """``(wrapper module path, shard name)`` for a shard's key, ``None`` for other keys."""
    parts = key.split(".")
    for index, part in enumerate(parts):
        if part.startswith(SHARD_PREFIX):
            return ".".join(parts[:index]), ".".join(parts[index:])
    return None


@dataclass(frozen=True)
class ShardedEntry:
    """One sharded tensor of the wrapper and the user's parameters it holds.

    Attributes:
        key: its state-dict key.
        names: full names of the parameters it holds (several for a flattened group).
        shapes: their shapes.
        length: the unpadded size of the sharded dimension (elements when flattened,
            rows with ``shard_param_on_dim_0``).
        row_shape: the dimensions after the first one with ``shard_param_on_dim_0``
            (empty when flattened).
    """

    key: str
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    length: int
    row_shape: tuple[int, ...] = ()

    @property
    def gathered_shape(self) -> tuple[int, ...]:
        """The shape of this tensor in gathered form (padding dropped)."""
        return (self.length, *self.row_shape)

    def to_full(self, gathered: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a gathered tensor into the user's parameters (fresh, contiguous tensors)."""
        if self.row_shape:
            return {self.names[0]: gathered.clone()}
        numels = [shape.numel() for shape in self.shapes]
        parts = torch.split(gathered, numels)
        return {
            name: part.reshape(shape).clone()
            for name, shape, part in zip(self.names, self.shapes, parts, strict=True)
        }

    def from_full(self, full: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The gathered tensor for the user's parameters in ``full``."""
        if self.row_shape:
            return full[self.names[0]]
        return torch.cat([full[name].reshape(-1) for name in self.names])


def describe_shards(
    shard_shapes: Mapping[str, Sequence[int]], metadata: Mapping[str, Any]
) -> dict[str, ShardedEntry]:
    """One :class:`ShardedEntry` per sharded key of ``shard_shapes`` (keys -> local shapes).

    Raises:
        ValueError: ``metadata`` does not describe a sharded key (it belongs to another
            model or wrapper layout).
    """
    flatten_info = metadata.get("flatten_info") or {}
    entries: dict[str, ShardedEntry] = {}
    for key, shape in shard_shapes.items():
        found = split_shard_key(key)
        if found is None:
            continue
        prefix, suffix = found
        try:
            info = metadata["shard_info"][prefix][suffix]
        except KeyError:
            raise ValueError(
                f"The shard metadata does not describe {key!r}: the checkpoint was written "
                f"for another model or another XLA FSDP wrapping (auto-wrap policy)."
            ) from None
        original = f"{prefix}.{info['_orig_name']}" if prefix else info["_orig_name"]
        size = torch.Size(info["_orig_size"])
        entries[key] = _entry(key, original, size, tuple(shape), flatten_info.get(original))
    return entries


def _entry(
    key: str, original: str, size: torch.Size, shard_shape: tuple[int, ...], flat: Any
) -> ShardedEntry:
    if len(shard_shape) > 1:  # sharded along dim 0, not flattened
        return ShardedEntry(key, (plain_name(original),), (size,), size[0], tuple(size[1:]))
    if flat is None:
        return ShardedEntry(key, (plain_name(original),), (size,), size.numel())
    names, shapes, _ = flat
    base = original.rpartition(".")[0]
    full_names = tuple(plain_name(f"{base}.{name}" if base else name) for name in names)
    return ShardedEntry(key, full_names, tuple(torch.Size(s) for s in shapes), size.numel())


def drop_padding(concatenated: torch.Tensor, entry: ShardedEntry) -> torch.Tensor:
    """The gathered form of ``entry`` from its shards concatenated in rank order.

    Raises:
        ValueError: the concatenation is shorter than the tensor it should hold.
    """
    if concatenated.shape[0] < entry.length:
        raise ValueError(
            f"The shards of {entry.key!r} hold {concatenated.shape[0]} entries along the "
            f"sharded dimension, fewer than the {entry.length} of its parameters: shards "
            f"are missing."
        )
    return concatenated[: entry.length]


def take_shard(
    gathered: torch.Tensor, shard_shape: Sequence[int], *, rank: int, world: int
) -> torch.Tensor:
    """Process ``rank``'s shard (of shape ``shard_shape``) of a gathered tensor.

    The gathered tensor is zero-padded along its first dimension to ``world`` shards,
    as the wrapper pads, then sliced.

    Raises:
        ValueError: the gathered tensor does not fit ``world`` shards of that shape.
    """
    rows = int(shard_shape[0])
    if gathered.shape[0] > rows * world or tuple(gathered.shape[1:]) != tuple(shard_shape[1:]):
        raise ValueError(
            f"A tensor of shape {tuple(gathered.shape)} does not fit {world} shards of shape "
            f"{tuple(shard_shape)}: the model was wrapped differently when it was saved."
        )
    missing = rows * world - gathered.shape[0]
    if missing:
        filler = gathered.new_zeros((missing, *gathered.shape[1:]))
        gathered = torch.cat([gathered, filler])
    return gathered[rank * rows : (rank + 1) * rows].clone()


# ------------------------------------------------------------------------------- model
def gather_model_state(
    local: Mapping[str, torch.Tensor], entries: Mapping[str, ShardedEntry], concat: Concat
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None:
    """``(gathered shards, buffers)`` from this process's local state (a collective).

    ``concat`` is called once, with the shards in ``local``'s key order; buffers (every
    key that is not a shard) are the same on every process and are kept as they are.
    ``None`` where ``concat`` keeps nothing.
    """
    keys = [key for key in local if key in entries]
    joined = concat([local[key] for key in keys])
    if joined is None:
        return None
    gathered = {
        key: drop_padding(value, entries[key]) for key, value in zip(keys, joined, strict=True)
    }
    buffers = {key: value for key, value in local.items() if key not in entries}
    return gathered, buffers


def full_state(
    gathered: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    entries: Mapping[str, ShardedEntry],
    metadata: Mapping[str, Any],
) -> dict[str, torch.Tensor]:
    """The user's state dict: parameters under their own names, buffers in their dtypes."""
    full: dict[str, torch.Tensor] = {}
    for key, value in gathered.items():
        full.update(entries[key].to_full(value))
    original_dtypes = {
        plain_name(name): info["_orig_dtype"]
        for name, info in (metadata.get("buffer_info") or {}).items()
    }
    for key, value in buffers.items():
        name = plain_name(key)
        dtype = original_dtypes.get(name)
        full[name] = value.to(dtype) if dtype is not None else value
    return full


def gathered_from_full(
    full: Mapping[str, torch.Tensor],
    entries: Mapping[str, ShardedEntry],
    buffer_keys: Sequence[str],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(gathered shards, buffers)`` for a full state dict, to load into the wrapper.

    A name ``full`` holds beyond the model's is accepted only when its tensor is another
    name's (tied weights written under both names, e.g. ``lm_head.weight``): the wrapper
    keeps shared parameters once.

    Raises:
        KeyError: names the model needs are missing, or unknown names are present.
    """
    needed = {name for entry in entries.values() for name in entry.names}
    buffer_names = {plain_name(key): key for key in buffer_keys}
    missing = sorted((needed | set(buffer_names)) - set(full))
    unexpected = [
        name
        for name in sorted(set(full) - needed - set(buffer_names))
        if not _is_alias(full[name], [full[n] for n in needed if n in full])
    ]
    if missing or unexpected:
        raise KeyError(
            f"The state dict does not fit the XLA FSDP model: missing {missing[:10]}, "
            f"unexpected {unexpected[:10]}. Load weights saved from the same architecture."
        )
    gathered = {key: entry.from_full(full) for key, entry in entries.items()}
    buffers = {key: full[name] for name, key in buffer_names.items()}
    return gathered, buffers


def _is_alias(tensor: torch.Tensor, candidates: Sequence[torch.Tensor]) -> bool:
    return any(
        other is tensor or (other.shape == tensor.shape and torch.equal(other, tensor))
        for other in candidates
    )


def local_state(
    gathered: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    shard_shapes: Mapping[str, Sequence[int]],
    *,
    rank: int,
    world: int,
) -> dict[str, torch.Tensor]:
    """Process ``rank``'s local state (for ``wrapper.load_state_dict``) from gathered form.

    Raises:
        ValueError: the gathered shards are not this wrapper's (another model, or another
            auto-wrap policy or ``flatten_parameters`` setting when they were saved).
    """
    expected = {key for key in shard_shapes if split_shard_key(key) is not None}
    missing = sorted(expected - set(gathered))
    unexpected = sorted(set(gathered) - expected)
    if missing or unexpected:
        raise ValueError(
            f"The saved shards do not fit this XLA FSDP model: {len(missing)} of its shards "
            f"are missing (e.g. {missing[:2]}) and {len(unexpected)} are unknown (e.g. "
            f"{unexpected[:2]}). They were written for another model or another XLA FSDP "
            f"wrapping (auto-wrap policy, flatten_parameters): load them with the settings "
            f"they were saved with, or consolidate them (consolidate_xla_fsdp_checkpoint) "
            f"and load the full weights."
        )
    state = {
        key: take_shard(value, shard_shapes[key], rank=rank, world=world)
        for key, value in gathered.items()
    }
    state.update(buffers)
    return state


# --------------------------------------------------------------------------- optimizer
def keyed_optimizer_state(
    state_dict: Mapping[str, Any], param_keys: Sequence[str]
) -> dict[str, Any]:
    """``optimizer.state_dict()`` with parameter indices replaced by shard keys.

    Args:
        state_dict: the optimizer's state dict (parameters numbered in group order).
        param_keys: the state-dict key of each numbered parameter, in that order.

    Raises:
        ValueError: the optimizer numbers more parameters than ``param_keys`` names.
    """
    groups = state_dict["param_groups"]
    count = sum(len(group["params"]) for group in groups)
    if count != len(param_keys):
        raise ValueError(
            f"The optimizer holds {count} parameters but the XLA FSDP model has "
            f"{len(param_keys)}: build the optimizer on the wrapped model's parameters."
        )
    return {
        "state": {param_keys[index]: dict(value) for index, value in state_dict["state"].items()},
        "param_groups": [
            {**group, "params": [param_keys[index] for index in group["params"]]}
            for group in groups
        ],
    }


def _sharded_slots(
    keyed: Mapping[str, Any], shard_shapes: Mapping[str, Sequence[int]]
) -> list[tuple[str, str]]:
    """``(parameter key, state name)`` of every state tensor shaped like its shard, in an
    order every process shares."""
    slots = []
    for key in sorted(keyed["state"]):
        shape = tuple(shard_shapes[key])
        for name in sorted(keyed["state"][key]):
            value = keyed["state"][key][name]
            if isinstance(value, torch.Tensor) and value.dim() > 0 and tuple(value.shape) == shape:
                slots.append((key, name))
    return slots


def gather_optimizer_state(
    keyed: Mapping[str, Any],
    shard_shapes: Mapping[str, Sequence[int]],
    entries: Mapping[str, ShardedEntry],
    concat: Concat,
) -> dict[str, Any] | None:
    """Keyed optimizer state in gathered form (a collective: ``concat`` is called once).

    ``None`` where ``concat`` keeps nothing.
    """
    slots = _sharded_slots(keyed, shard_shapes)
    joined = concat([keyed["state"][key][name] for key, name in slots])
    if joined is None:
        return None
    state = {key: dict(values) for key, values in keyed["state"].items()}
    for (key, name), value in zip(slots, joined, strict=True):
        state[key][name] = drop_padding(value, entries[key])
    return {"state": state, "param_groups": [dict(group) for group in keyed["param_groups"]]}


def local_optimizer_state(
    gathered: Mapping[str, Any],
    param_keys: Sequence[str],
    shard_shapes: Mapping[str, Sequence[int]],
    entries: Mapping[str, ShardedEntry],
    *,
    rank: int,
    world: int,
) -> dict[str, Any]:
    """An ``optimizer.load_state_dict`` argument for process ``rank`` from gathered state.

    Raises:
        KeyError: the saved state names parameters the model does not have.
    """
    index = {key: position for position, key in enumerate(param_keys)}
    unknown = sorted(
        {key for group in gathered["param_groups"] for key in group["params"]} - set(index)
    )
    if unknown:
        raise KeyError(
            f"The optimizer state names parameters this XLA FSDP model does not have: "
            f"{unknown[:5]}. Resume with the model (and auto-wrap policy) it was saved with."
        )
    state = {}
    for key, values in gathered["state"].items():
        shaped = entries[key].gathered_shape
        state[index[key]] = {
            name: take_shard(value, shard_shapes[key], rank=rank, world=world)
            if isinstance(value, torch.Tensor) and tuple(value.shape) == shaped and value.dim()
            else value
            for name, value in values.items()
        }
    groups = [
        {**group, "params": [index[key] for key in group["params"]]}
        for group in gathered["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def assign_param_groups(
    optimizer: Any,
    names: Mapping[int, str],
    shards: Sequence[tuple[str, torch.Tensor]],
    entries: Mapping[str, ShardedEntry],
) -> None:
    """Point ``optimizer``, built on the unwrapped model, at the wrapper's shards.

    The Trainer builds its parameter groups (weight decay or not) from the user's
    parameter names; after wrapping, each shard joins the group of the parameters it
    holds. A flattened shard holding parameters of several groups joins the first of
    them (keep ``flatten_parameters`` off for exact per-parameter groups). Parameters the
    optimizer left out (frozen ones) stay out.

    Args:
        optimizer: a ``torch.optim.Optimizer`` that has not stepped yet.
        names: ``id(parameter) -> name`` of the unwrapped model's parameters.
        shards: the wrapper's ``named_parameters()``.
        entries: :func:`describe_shards` of the wrapper.

    Raises:
        ValueError: the optimizer already holds state, or optimizes a tensor that is not
            a parameter of the model.
    """
    if optimizer.state:
        raise ValueError(
            "The optimizer has already stepped; XLA FSDP replaces the model's parameters by "
            "shards, so the optimizer must be built before its first step (or on the "
            "wrapped model's parameters)."
        )
    group_of: dict[str, int] = {}
    for position, group in enumerate(optimizer.param_groups):
        for param in group["params"]:
            if id(param) not in names:
                raise ValueError(
                    "The optimizer optimizes a tensor that is not a parameter of the model "
                    "being wrapped; build it on the model's parameters."
                )
            group_of.setdefault(names[id(param)], position)
    regrouped: list[list[torch.Tensor]] = [[] for _ in optimizer.param_groups]
    for name, shard in shards:
        held = [group_of[full] for full in entries[state_key(name)].names if full in group_of]
        if held:
            regrouped[held[0]].append(shard)
    for group, params in zip(optimizer.param_groups, regrouped, strict=True):
        group["params"] = params


# ------------------------------------------------------------------------------- files
def rank_file(folder: str, kind: str, *, rank: int, world: int) -> str:
    """The path of process ``rank``'s ``kind`` (``"model"`` / ``"optimizer"``) file."""
    pattern = MODEL_FILE if kind == "model" else OPTIMIZER_FILE
    return os.path.join(folder, pattern.format(rank=rank, world=world))


def rank_files(folder: str, kind: str) -> list[str]:
    """Every process's ``kind`` file in ``folder``, in rank order.

    Raises:
        FileNotFoundError: ``folder`` holds no such file.
        ValueError: the files disagree on the number of processes, or some are missing.
    """
    suffix = _KIND_SUFFIX[kind]
    found: dict[int, int] = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        match = _RANK_FILE.match(name)
        if match and match.group(3) == suffix:
            found[int(match.group(1))] = int(match.group(2))
    if not found:
        raise FileNotFoundError(
            f"{folder} holds no XLA FSDP {kind} shards (rank<r>-of-<n>-{suffix} files). "
            f"Pass a checkpoint folder written by the XLA FSDP runtime."
        )
    worlds = set(found.values())
    if len(worlds) != 1 or sorted(found) != list(range(next(iter(worlds)))):
        raise ValueError(
            f"The XLA FSDP {kind} shards in {folder} are incomplete or mixed: ranks "
            f"{sorted(found)} of {sorted(worlds)} processes. Each of the n processes must "
            f"have written rank<r>-of-<n>-{suffix}."
        )
    world = next(iter(worlds))
    return [rank_file(folder, kind, rank=rank, world=world) for rank in range(world)]


def read_rank_file(path: str) -> dict[str, Any]:
    """Load one process's file onto the CPU, without running pickled code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _concat_across(per_rank: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    return [torch.cat(list(parts)) for parts in zip(*per_rank, strict=True)]


def load_gathered_model(
    folder: str,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, ShardedEntry], Any]:
    """``(gathered shards, buffers, entries, metadata)`` from a folder of model files."""
    files = [read_rank_file(path) for path in rank_files(folder, "model")]
    metadata = files[0]["shard_metadata"]
    _check_ranks(files, folder)
    locals_ = [file["model"] for file in files]
    entries = describe_shards({k: v.shape for k, v in locals_[0].items()}, metadata)
    keys = [key for key in locals_[0] if key in entries]
    joined = _concat_across([[state[key] for key in keys] for state in locals_])
    gathered = {
        key: drop_padding(value, entries[key]) for key, value in zip(keys, joined, strict=True)
    }
    buffers = {key: value for key, value in locals_[0].items() if key not in entries}
    return gathered, buffers, entries, metadata


def _check_ranks(files: Sequence[Mapping[str, Any]], folder: str) -> None:
    for rank, file in enumerate(files):
        metadata = file["shard_metadata"]
        if metadata.get("rank", rank) != rank or metadata.get("world_size") != len(files):
            raise ValueError(
                f"The shard file of rank {rank} in {folder} describes rank "
                f"{metadata.get('rank')} of {metadata.get('world_size')} processes: the "
                f"folder mixes files of different runs."
            )


def load_gathered_optimizer(folder: str, entries: Mapping[str, ShardedEntry]) -> dict[str, Any]:
    """Keyed optimizer state in gathered form from a folder of optimizer files.

    Each file must hold ``param_keys`` and ``shard_shapes`` besides ``optimizer``, as
    :class:`~trainer_dist.XlaFSDPRuntime` writes them.

    Raises:
        ValueError: the files lack ``param_keys`` (written by another program).
    """
    files = [read_rank_file(path) for path in rank_files(folder, "optimizer")]
    if any("param_keys" not in file or "shard_shapes" not in file for file in files):
        raise ValueError(
            f"The optimizer shards in {folder} do not name their parameters (param_keys), "
            f"so they can only be loaded by the same number of processes that wrote them."
        )
    keyed = [keyed_optimizer_state(f["optimizer"], f["param_keys"]) for f in files]
    shard_shapes = files[0]["shard_shapes"]
    slots = _sharded_slots(keyed[0], shard_shapes)
    per_rank = [[k["state"][key][name] for key, name in slots] for k in keyed]
    joined = _concat_across(per_rank) if slots else []
    state = {key: dict(values) for key, values in keyed[0]["state"].items()}
    for (key, name), value in zip(slots, joined, strict=True):
        state[key][name] = drop_padding(value, entries[key])
    return {"state": state, "param_groups": keyed[0]["param_groups"]}


def consolidate_xla_fsdp_checkpoint(
    checkpoint_dir: str, *, save_to: str | None = None
) -> dict[str, torch.Tensor]:
    """Full model weights from the per-process shard files of an XLA FSDP checkpoint.

    Reads every ``rank<r>-of-<n>-pytorch_model.bin`` in ``checkpoint_dir`` (written by
    :class:`~trainer_dist.XlaFSDPRuntime` or by the reference's Trainer), joins the shards
    and returns the state dict under the user's parameter names, buffers in their original
    dtypes. Works on the CPU, without torch_xla. Files are read with
    ``weights_only=True``: no pickled code runs.

    Args:
        checkpoint_dir: a checkpoint folder holding the shard files.
        save_to: if given, a folder to write the weights to as ``model.safetensors``.

    Raises:
        FileNotFoundError: no shard files in ``checkpoint_dir``.
        ValueError: shard files are missing, mixed between runs, or inconsistent.
    """
    gathered, buffers, entries, metadata = load_gathered_model(checkpoint_dir)
    full = full_state(gathered, buffers, entries, metadata)
    if save_to is not None:
        from safetensors.torch import save_file

        os.makedirs(save_to, exist_ok=True)
        tensors = {name: value.contiguous() for name, value in full.items()}
        save_file(tensors, os.path.join(save_to, "model.safetensors"), metadata={"format": "pt"})
    return full
