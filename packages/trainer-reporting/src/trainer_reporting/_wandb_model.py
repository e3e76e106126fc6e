"""Model artifacts for ``WANDB_LOG_MODEL``: what goes in them and their metadata.

Kept apart from the callback because saving a model is the one place this torch-free
package touches the model's weights: through the model's own ``save_pretrained`` when it
has one (a transformers model), else safetensors, imported only then (as is torch, to
pickle the training arguments beside the weights).
"""

from __future__ import annotations

import logging
import numbers
import os
import pickle
from typing import Any

from trainer_core import TrainerState, import_optional
from trainer_reporting._logs import model_config_dict

logger = logging.getLogger(__name__)

ARCHITECTURE_FILE = "model_architecture.txt"
TRAINING_ARGS_JSON = "training_args.json"
TRAINING_ARGS_BIN = "training_args.bin"


def numeric_summary(wandb: Any) -> dict[str, Any]:
    """The run summary's numeric entries, without wandb's own ``_`` keys."""
    summary = wandb.run.summary
    return {
        key: summary[key]
        for key in summary.keys()  # noqa: SIM118  # a wandb Summary is not a dict
        if not key.startswith("_") and isinstance(summary[key], numbers.Number)
    }


def final_model_metadata(wandb: Any, args: Any, state: TrainerState) -> dict[str, Any]:
    """Metadata of the final-model artifact: the summary's metrics, or, when the best
    model was reloaded at the end, the metric that made it the best."""
    if args.load_best_model_at_end:
        metadata = {
            f"eval/{args.metric_for_best_model}": state.best_metric,
            "train/total_floss": state.total_flos,
            "model/num_parameters": wandb.config.get("model/num_parameters"),
        }
    else:
        metadata = numeric_summary(wandb)
    metadata["final_model"] = True
    return metadata


def model_artifact(
    wandb: Any,
    name: str,
    model: Any,
    *,
    metadata: dict[str, Any] | None = None,
    save_to: str | None = None,
    processing_class: Any = None,
    args: Any = None,
) -> Any:
    """A ``model`` artifact holding the architecture (``model_architecture.txt``) and,
    when ``save_to`` is given, what ``Trainer.save_model`` writes there: the weights, the
    processing class and the training arguments (see :func:`save_model_files`).

    Without ``metadata`` it is the initial-model artifact: the configuration and size.
    """
    if metadata is None:
        metadata = {
            "model_config": model_config_dict(model),
            "num_parameters": wandb.config.get("model/num_parameters"),
            "initial_model": True,
        }
    artifact = wandb.Artifact(name=name, type="model", metadata=metadata)
    with artifact.new_file(ARCHITECTURE_FILE, mode="w", encoding="utf-8") as handle:
        handle.write(f"{model}\n")  # as printing the model writes it
    if save_to is not None and model is not None:
        save_model_files(model, save_to, processing_class, args)
        artifact.add_dir(save_to)
    return artifact


def save_model_files(
    model: Any, folder: str, processing_class: Any = None, args: Any = None
) -> None:
    """Write ``model`` (and ``processing_class`` and ``args``) into ``folder``.

    ``save_pretrained`` when the object has it; a plain torch module is written as
    ``model.safetensors``, the checkpoints' weight format. The arguments go in too (see
    :func:`save_training_args`): whoever downloads the final model finds the settings
    that trained it, as in a folder ``Trainer.save_model`` wrote.
    """
    if callable(getattr(model, "save_pretrained", None)):
        model.save_pretrained(folder)
    else:
        safetensors_torch = import_optional(
            "safetensors.torch",
            package="safetensors",
            extra=None,
            feature="WANDB_LOG_MODEL (saving a model without save_pretrained)",
        )
        safetensors_torch.save_model(model, os.path.join(folder, "model.safetensors"))
    if callable(getattr(processing_class, "save_pretrained", None)):
        processing_class.save_pretrained(folder)
    if args is not None:
        save_training_args(args, folder)


def save_training_args(args: Any, folder: str) -> None:
    """``training_args.json`` (readable without any library) and ``training_args.bin``
    (the pickled object, the file the reference's model folders hold) into ``folder``.

    The ``.bin`` needs torch and picklable arguments; without them it is left out, which
    is no reason to lose the artifact.
    """
    to_json = getattr(args, "to_json_string", None)
    if callable(to_json):
        with open(os.path.join(folder, TRAINING_ARGS_JSON), "w", encoding="utf-8") as handle:
            handle.write(to_json())
    try:
        import torch
    except ImportError:
        return
    path = os.path.join(folder, TRAINING_ARGS_BIN)
    try:
        torch.save(args, path)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        if os.path.exists(path):
            os.remove(path)  # what was written of it
        logger.warning("The model artifact holds no %s: %s", TRAINING_ARGS_BIN, error)
