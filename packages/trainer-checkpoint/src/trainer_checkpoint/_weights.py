"""Model weights on disk: safetensors (sharded past a size) or ``pytorch_model.bin``.

File names follow the reference so that ``from_pretrained`` and the reference Trainer
read what we write: ``model.safetensors``, or ``model-00001-of-0000N.safetensors`` plus
``model.safetensors.index.json`` (``{"metadata": {"total_size": ...}, "weight_map":
{name: file}}``); with ``save_safetensors=False``, ``pytorch_model.bin`` (and its
``.index.json`` when sharded).

Tensors that share memory (tied embeddings) are written once: in safetensors under the
first name in sorted order (loading re-ties them because the model still shares the
parameter, and the missing names are checked to be such aliases); in
``pytorch_model.bin`` under every name, as ``torch.save`` keeps shared memory once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import torch

from trainer_checkpoint._adapters import has_adapter, load_adapter, wrapped_chain
from trainer_checkpoint._durable import Flusher, can_write_safetensors, write_safetensors
from trainer_checkpoint._errors import NotACheckpointError
from trainer_checkpoint._reading import read_part
from trainer_checkpoint._safe_load import safe_load

__all__ = [
    "SAFE_WEIGHTS_INDEX_NAME",
    "SAFE_WEIGHTS_NAME",
    "WEIGHTS_INDEX_NAME",
    "WEIGHTS_NAME",
    "has_weights",
    "load_weights",
    "parse_size",
    "read_weights",
    "save_weights",
    "weight_files",
]

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
_WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
_SHARD_RE = re.compile(r"^(?:model|pytorch_model)-\d{5}-of-\d{5}\.(?:safetensors|bin)$")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20}
_UNITS |= {"GIB": 2**30, "TB": 10**12}


def parse_size(size: int | str) -> int:
    """Bytes in ``size``: an int, or a string such as ``"5GB"``, ``"500MB"``, ``"2GiB"``.

    Raises:
        ValueError: the string is not a number followed by one of B, KB, MB, GB, TB,
            KiB, MiB, GiB.
    """
    if isinstance(size, int) and not isinstance(size, bool):
        return size
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(size))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"max_shard_size={size!r} is not a size: pass bytes as an int or a string like "
            f"'5GB' (units: {', '.join(sorted(u for u in _UNITS if u))})."
        )
    return int(float(match.group(1)) * _UNITS[unit])


def weight_files(folder: str) -> list[str]:
    """Names of the model weight files in ``folder``, in every layout we or the
    reference write (single file, shards, index; safetensors or pickle).

    The files :func:`has_weights` looks for (the single file, the index) come first, the
    shards after: moved away in this order, a folder stops counting as holding weights
    before any shard leaves it; moved back in reverse, it counts again only once every
    shard is back.
    """
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(
        (
            name
            for name in names
            if (name in _WEIGHT_FILES or _SHARD_RE.match(name))
            and os.path.isfile(os.path.join(folder, name))
        ),
        key=lambda name: (name not in _WEIGHT_FILES, name),
    )


def has_weights(folder: str) -> bool:
    """Whether ``folder`` holds model weights in one of the known layouts."""
    return any(os.path.isfile(os.path.join(folder, name)) for name in _WEIGHT_FILES)


# ------------------------------------------------------------------------- saving
def save_weights(
    state_dict: Mapping[str, Any],
    folder: str,
    *,
    safe: bool = True,
    max_shard_size: int | str = "5GB",
    flusher: Flusher | None = None,
) -> list[str]:
    """Write ``state_dict`` into ``folder``; return the paths of the files written.

    With a ``flusher`` (a checkpoint being saved), each file heads for the disk while it
    is written and is flushed in the background once complete; without one the files are
    left in the page cache, like any plain write.
    """
    flusher = flusher if flusher is not None else Flusher(enabled=False)
    tensors = _unique_tensors(state_dict)
    shards = _shard(tensors, parse_size(max_shard_size))
    base, index_name = (
        (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME) if safe else (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
    )
    names = (
        [base]
        if len(shards) == 1
        else [_shard_name(base, i, len(shards)) for i in range(len(shards))]
    )
    files = list(zip(names, shards, strict=True))
    if not safe:  # torch.save keeps shared memory once: every name can stay
        files = [(name, _with_aliases(shard, state_dict)) for name, shard in files]
    written = []
    for name, shard in files:
        path = os.path.join(folder, name)
        _write_shard(shard, path, safe=safe, flusher=flusher)
        written.append(path)
    if len(shards) > 1:
        written.append(_write_index(folder, index_name, names, shards, files))
    return written


def _with_aliases(
    shard: dict[str, torch.Tensor], state_dict: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """``shard`` plus the names that view exactly a tensor it holds (tied weights).

    A ``pytorch_model.bin`` written this way holds every name of the state dict, as
    ``torch.save(model.state_dict())`` would, so a strict ``load_state_dict`` of the file
    works; safetensors cannot store such aliases, which loading re-ties instead.
    """
    kept = {(t.device, t.untyped_storage().data_ptr()): t for t in shard.values() if t.numel()}
    complete = dict(shard)
    for name, tensor in state_dict.items():
        if name in complete or not isinstance(tensor, torch.Tensor) or not tensor.numel():
            continue
        twin = kept.get((tensor.device, tensor.untyped_storage().data_ptr()))
        if twin is not None and _same_view(twin, tensor):
            complete[name] = twin
    return complete


def _unique_tensors(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Tensors made contiguous and safe to write, each memory region once.

    Names that view exactly the same memory (tied weights) keep only the first in sorted
    order; overlapping but different views are copied apart.
    """
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name in sorted(state_dict):
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor):
            continue
        key = (tensor.device, tensor.untyped_storage().data_ptr()) if tensor.numel() else (name,)
        groups.setdefault(key, []).append(name)
    result: dict[str, torch.Tensor] = {}
    for names in groups.values():
        first = state_dict[names[0]]
        same = all(_same_view(first, state_dict[n]) for n in names[1:])
        if len(names) == 1 or same:
            result[names[0]] = first.detach().contiguous()
        else:
            for name in names:
                result[name] = state_dict[name].detach().clone().contiguous()
    return result


def _same_view(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.data_ptr() == b.data_ptr()
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
    )


def _shard(tensors: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    return shards


def _shard_name(base: str, index: int, count: int) -> str:
    stem, ext = base.rsplit(".", 1)
    return f"{stem}-{index + 1:05d}-of-{count:05d}.{ext}"


def _write_shard(
    shard: dict[str, torch.Tensor], path: str, *, safe: bool, flusher: Flusher
) -> None:
    if safe and not can_write_safetensors(shard):  # an exotic dtype: safetensors' writer
        from safetensors.torch import save_file

        save_file(shard, path, metadata={"format": "pt"})
        return
    handle = flusher.open(path)
    try:
        if safe:
            write_safetensors(shard, handle, {"format": "pt"})
        else:
            torch.save(shard, handle)
    except BaseException as error:
        handle.abandon(error)
        raise
    flusher.close(handle)


def _write_index(
    folder: str,
    index_name: str,
    names: list[str],
    shards: list[dict[str, Any]],
    files: list[tuple[str, dict[str, Any]]],
) -> str:
    """The index of a sharded save: the bytes of the distinct tensors (``shards``), and
    where each name written (``files``, aliases included) is."""
    total = sum(t.numel() * t.element_size() for shard in shards for t in shard.values())
    weight_map = {key: name for name, shard in files for key in shard}
    path = os.path.join(folder, index_name)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, handle, indent=2)
    return path


# ------------------------------------------------------------------------ loading
def read_weights(folder: str, map_location: Any = None) -> dict[str, torch.Tensor]:
    """Every tensor stored in ``folder``, whichever layout it uses.

    Raises:
        NotACheckpointError: ``folder`` holds no weights file.
    """
    for index_name, single in (
        (SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME),
        (WEIGHTS_INDEX_NAME, WEIGHTS_NAME),
    ):
        if os.path.isfile(os.path.join(folder, single)):
            return _read_file(os.path.join(folder, single), map_location)
        if os.path.isfile(os.path.join(folder, index_name)):
            return _read_index(folder, index_name, map_location)
    raise NotACheckpointError(
        f"{folder} holds no model weights: expected one of {', '.join(_WEIGHT_FILES)}."
    )


def _read_file(path: str, map_location: Any) -> dict[str, torch.Tensor]:
    """The tensors of one weights file (a damaged file raises ``CorruptCheckpointError``)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        device = "cpu" if map_location is None else str(map_location)
        return read_part(path, lambda: load_file(path, device=device))
    location = map_location if map_location is not None else "cpu"
    return read_part(path, lambda: safe_load(path, map_location=location))


def _read_index(folder: str, index_name: str, map_location: Any) -> dict[str, torch.Tensor]:
    path = os.path.join(folder, index_name)
    weight_map = read_part(path, lambda: _weight_map(path))
    tensors: dict[str, torch.Tensor] = {}
    for name in sorted(set(weight_map.values())):
        tensors.update(_read_file(os.path.join(folder, name), map_location))
    return tensors


def _weight_map(index_path: str) -> dict[str, str]:
    with open(index_path, encoding="utf-8") as handle:
        weight_map = json.load(handle)["weight_map"]
    if not isinstance(weight_map, dict):
        raise ValueError(f"its weight_map is a {type(weight_map).__name__}, not an object")
    return weight_map


def load_weights(folder: str, model: torch.nn.Module, *, map_location: Any = None) -> None:
    """Load the weights in ``folder`` into ``model``.

    The stored names are checked before anything is loaded. Where they do not fit but
    the model can read its own saved format (a transformers model: ``from_pretrained``
    and a ``config``), the weights are read through it. transformers 5's
    ``save_pretrained`` writes some architectures (ViT, among others) under their
    original checkpoint names, which differ from the module's names; only the model
    class knows the conversion back.

    A folder holding a PEFT adapter and no full weights (what ``save_pretrained`` of a
    LoRA model writes) is loaded into the model's adapter (see ``_adapters``).

    Raises:
        NotACheckpointError: no weights in ``folder``.
        ValueError: the stored names do not match the model's (other than tied aliases),
            and the model cannot convert them.
    """
    if map_location is None:
        first = next(iter(model.parameters()), None)
        map_location = first.device if first is not None else "cpu"
    if not has_weights(folder) and has_adapter(folder):
        load_adapter(folder, model, device=map_location)
        return
    stored = read_weights(folder, map_location)
    missing, unexpected = _misfit(model.state_dict(), stored)
    owner = _reader_of(model)
    if (missing or unexpected) and _converts_saved_names(owner):
        stored = _read_through_model_class(folder, owner)
        missing, unexpected = _misfit(model.state_dict(), stored)
    if missing or unexpected:
        raise ValueError(
            f"The weights in {folder} do not fit {type(owner).__name__}: missing "
            f"{missing[:10]}, unexpected {unexpected[:10]}. Load the checkpoint into the "
            "same model architecture it was saved from."
        )
    model.load_state_dict(stored, strict=False)


def _misfit(expected: Mapping[str, Any], stored: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Names the model has and ``stored`` lacks (tied aliases written once excepted), and
    names ``stored`` has that the model lacks."""
    missing = [name for name in expected if name not in stored]
    if missing:
        missing = _untied_missing(expected, set(missing))
    return missing, sorted(set(stored) - set(expected))


def _reader_of(model: Any) -> Any:
    """The wrapped model whose class can convert saved names, else the innermost one
    (named in errors: the user's class rather than a wrapper)."""
    chain = list(wrapped_chain(model))
    return next((inner for inner in chain if _converts_saved_names(inner)), chain[-1])


def _converts_saved_names(model: Any) -> bool:
    return callable(getattr(type(model), "from_pretrained", None)) and hasattr(model, "config")


def _read_through_model_class(folder: str, model: Any) -> dict[str, torch.Tensor]:
    """The weights in ``folder`` under the model's own names, as its class reads them.

    A name the class cannot place (a checkpoint of another architecture) comes back as a
    misfit rather than as a freshly initialised weight, which ``from_pretrained`` would
    otherwise substitute with a warning.
    """
    try:
        reloaded, info = type(model).from_pretrained(
            folder, config=model.config, output_loading_info=True, local_files_only=True
        )
    except (OSError, RuntimeError, TypeError, ValueError) as error:  # not its format
        raise ValueError(
            f"The weights in {folder} do not fit {type(model).__name__} by name, and "
            f"{type(model).__name__}.from_pretrained could not read them either: {error}"
        ) from error
    absent = set(info.get("missing_keys", ())) | set(info.get("mismatched_keys", ()))
    return {name: t for name, t in reloaded.state_dict().items() if name not in absent}


def _untied_missing(state_dict: Mapping[str, Any], missing: set[str]) -> list[str]:
    """The missing names that no loaded name shares memory with (truly absent weights)."""
    groups: dict[Any, list[str]] = {}
    for name, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.numel():
            groups.setdefault((tensor.device, tensor.untyped_storage().data_ptr()), []).append(name)
    absent = []
    for names in groups.values():
        if all(name in missing for name in names):
            absent.extend(n for n in names if n in missing)
    loose = missing - {n for names in groups.values() for n in names}
    return sorted(absent) + sorted(loose)
