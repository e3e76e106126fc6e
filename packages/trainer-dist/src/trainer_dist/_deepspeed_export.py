"""Turning a DeepSpeed ZeRO checkpoint into one plain state dict (``zero_to_fp32``).

A ZeRO checkpoint spreads the fp32 master weights over one file per process; nothing but
DeepSpeed can read it as it is. The export merges the partitions into a full fp32 state
dict that plain PyTorch (``model.load_state_dict``), this trainer's ``from_pretrained``-
style loaders and the Hub read, and can write it as a safetensors file. The merge is
DeepSpeed's own (``get_fp32_state_dict_from_zero_checkpoint``); it runs on one process,
without GPUs, on any machine.
"""

from __future__ import annotations

import os
from typing import Any

from trainer_dist._deepspeed_process import import_deepspeed
from trainer_dist._deepspeed_universal import LATEST_FILE

__all__ = ["LATEST_FILE", "export_deepspeed_checkpoint"]


def export_deepspeed_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    output_file: str | os.PathLike[str] | None = None,
    *,
    tag: str | None = None,
) -> dict[str, Any]:
    """Merge a ZeRO (stage 1-3) checkpoint into a full fp32 state dict.

    Args:
        checkpoint_dir: the folder ``save_sharded_state`` / ``engine.save_checkpoint``
            wrote (a ``checkpoint-<N>`` folder: it holds ``latest`` and
            ``global_step<N>/``).
        output_file: when given, the state dict is also written there as safetensors
            (tensors sharing memory, such as tied embeddings, are stored as copies:
            safetensors refuses shared storage).
        tag: the ``global_step<N>`` sub-folder to read; default: the one ``latest`` names.

    Returns:
        ``{parameter name: fp32 CPU tensor}``, the keys of the model's ``state_dict()``.

    Raises:
        FileNotFoundError: the folder or the tag does not exist, or no tag was given and
            there is no ``latest`` file.
        trainer_core.MissingExtraError: deepspeed is not installed.
    """
    directory = os.fspath(checkpoint_dir)
    _check_checkpoint(directory, tag)
    import_deepspeed()
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    state = dict(get_fp32_state_dict_from_zero_checkpoint(directory, tag=tag))
    if output_file is not None:
        _save_safetensors(state, os.fspath(output_file))
    return state


def _check_checkpoint(directory: str, tag: str | None) -> None:
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"checkpoint_dir={directory!r} is not a folder. Pass the folder DeepSpeed saved "
            f"into (e.g. output_dir/checkpoint-500)."
        )
    if tag is not None:
        if not os.path.isdir(os.path.join(directory, tag)):
            raise FileNotFoundError(
                f"tag={tag!r}: {directory!r} has no such sub-folder; its entries are "
                f"{sorted(os.listdir(directory))}."
            )
        return
    if not os.path.isfile(os.path.join(directory, LATEST_FILE)):
        raise FileNotFoundError(
            f"{directory!r} has no '{LATEST_FILE}' file naming the DeepSpeed checkpoint to "
            f"read (its entries are {sorted(os.listdir(directory))}). Pass tag= (a "
            f"'global_step<N>' sub-folder) or the folder that holds it."
        )


def _save_safetensors(state: dict[str, Any], path: str) -> None:
    from safetensors.torch import save_file

    seen: set[int] = set()
    tensors = {}
    for name, tensor in state.items():
        pointer = tensor.untyped_storage().data_ptr()
        tensors[name] = tensor.clone().contiguous() if pointer in seen else tensor.contiguous()
        seen.add(pointer)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    save_file(tensors, path, metadata={"format": "pt"})
