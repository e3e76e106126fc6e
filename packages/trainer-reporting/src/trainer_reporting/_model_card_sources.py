"""Filling a model card draft from what a trainer knows: its arguments, logs, model, data.

Read through attributes only (``trainer.args``, ``trainer.state.log_history``,
``trainer.model``, the datasets), so that this torch-free package drafts cards for any
trainer with that shape, and without importing torch, transformers or datasets.
"""

from __future__ import annotations

import logging
import os
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from trainer_reporting._model_card import ModelCardDraft, as_list

logger = logging.getLogger(__name__)

TRAINER_TAG = "generated_from_trainer"
"""The tag every drafted card carries, as the reference's cards do (the Hub filters on it)."""

_TASK_SUFFIXES = {
    "ForCausalLM": "text-generation",
    "ForMaskedLM": "fill-mask",
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
    "ForQuestionAnswering": "question-answering",
    "ForMultipleChoice": "multiple-choice",
    "ForConditionalGeneration": "text2text-generation",
    "ForImageClassification": "image-classification",
    "ForObjectDetection": "object-detection",
    "ForAudioClassification": "audio-classification",
    "ForCTC": "automatic-speech-recognition",
    "ForSpeechSeq2Seq": "automatic-speech-recognition",
}
"""Model class name endings (the transformers convention) -> the Hub task they serve."""

_LOCAL_BUILDERS = {"csv", "json", "pandas", "parquet", "text", "generator", "arrow"}
"""Dataset builders that load local files or memory: not datasets the Hub knows."""

_NOT_METRICS = {"runtime", "samples_per_second", "steps_per_second", "epoch", "step"}
_VERSIONED = (
    ("trainer", "trainer"),
    ("PyTorch", "torch"),
    ("Transformers", "transformers"),
    ("Datasets", "datasets"),
    ("Tokenizers", "tokenizers"),
)


def draft_model_card(
    trainer: Any,
    *,
    language: str | list[str] | None = None,
    license: str | None = None,
    tags: str | list[str] | None = None,
    model_name: str | None = None,
    finetuned_from: str | None = None,
    tasks: str | list[str] | None = None,
    dataset_tags: str | list[str] | None = None,
    dataset: str | list[str] | None = None,
    dataset_args: str | list[str] | None = None,
) -> ModelCardDraft:
    """A card for ``trainer``'s model; each argument left ``None`` is inferred if it can be.

    Inferred: the base model (``model.config._name_or_path`` when it is a Hub id, not a
    local folder), the task (from the model class name), the dataset (a Hub dataset's
    builder, config and split), the model name (``output_dir``'s last part), and
    ``generated_from_trainer`` among the tags.
    """
    model = getattr(trainer, "model", None)
    data = _hub_dataset(trainer)
    dataset_tags = dataset_tags if dataset_tags is not None else data.get("tags")
    finetuned_from = finetuned_from if finetuned_from is not None else _base_model(model)
    rows, final = results_from_log_history(trainer.state.log_history)
    return ModelCardDraft(
        model_name=model_name or Path(trainer.args.output_dir).name or finetuned_from or "model",
        language=as_list(language),
        license=license,
        tags=_with_trainer_tag(as_list(tags)),
        finetuned_from=finetuned_from,
        tasks=as_list(tasks) if tasks is not None else _tasks_of(model),
        dataset=as_list(dataset) if dataset is not None else as_list(dataset_tags),
        dataset_tags=as_list(dataset_tags),
        dataset_args=list(
            as_list(dataset_args) if dataset_args is not None else data.get("args", [])
        ),
        dataset_metadata=data.get("metadata", []),
        final_results=final,
        training_results=rows,
        hyperparameters=hyperparameters_from_args(trainer.args),
        framework_versions=framework_versions(),
        library_name="transformers" if _is_transformers_model(model) else None,
    )


def _with_trainer_tag(tags: list[str]) -> list[str]:
    return tags if TRAINER_TAG in tags else [*tags, TRAINER_TAG]


def _base_model(model: Any) -> str | None:
    name = getattr(getattr(model, "config", None), "_name_or_path", None)
    if not isinstance(name, str) or not name or os.path.isdir(name):
        return None
    return name


def _tasks_of(model: Any) -> list[str]:
    name = type(model).__name__
    return [task for suffix, task in _TASK_SUFFIXES.items() if name.endswith(suffix)][:1]


def _is_transformers_model(model: Any) -> bool:
    return type(model).__module__.startswith("transformers.")


def _hub_dataset(trainer: Any) -> dict[str, Any]:
    """Tag, config argument and split of a Hub dataset (duck-typed ``datasets.Dataset``)."""
    data = getattr(trainer, "eval_dataset", None) or getattr(trainer, "train_dataset", None)
    builder = getattr(data, "builder_name", None)
    if not isinstance(builder, str) or builder in _LOCAL_BUILDERS:
        return {}
    config = getattr(data, "config_name", None)
    return {
        "tags": [builder],
        "args": [config],
        "metadata": [{"config": config, "split": str(getattr(data, "split", None))}],
    }


def results_from_log_history(
    log_history: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One table row per evaluation logged during training, and the last evaluation's metrics.

    A row holds the last training loss logged before that evaluation ("No log" when none
    was), the epoch, the step, the validation loss and the other metrics under display
    names (``eval_accuracy`` -> ``Accuracy``). Evaluations after training (with
    ``train_runtime`` logged) count for the final metrics, not the table.
    """
    end = next((i for i, logs in enumerate(log_history) if "train_runtime" in logs), None)
    rows: list[dict[str, Any]] = []
    training_loss: Any = "No log"
    for logs in log_history[:end] if end is not None else []:
        training_loss = logs.get("loss", training_loss)
        if "eval_loss" in logs:
            rows.append(_result_row(logs, training_loss))
    evaluations = [logs for logs in log_history if "eval_loss" in logs]
    return rows, _final_results(evaluations[-1]) if evaluations else None


def _result_row(logs: dict[str, Any], training_loss: Any) -> dict[str, Any]:
    row = {"Training Loss": training_loss, "Epoch": logs.get("epoch"), "Step": logs.get("step")}
    row["Validation Loss"] = logs["eval_loss"]
    for key, value in logs.items():
        name = key.removeprefix("eval_")
        if key.startswith("eval_") and name != "loss" and name not in _NOT_METRICS:
            row[display_name(name)] = value
    return row


def _final_results(logs: dict[str, Any]) -> dict[str, Any]:
    return {
        display_name(key.removeprefix("eval_")): value
        for key, value in logs.items()
        if key.startswith("eval_") and key.removeprefix("eval_") not in _NOT_METRICS
    }


def display_name(metric: str) -> str:
    """``matthews_correlation`` -> ``Matthews Correlation``."""
    return " ".join(part.capitalize() for part in metric.split("_"))


def hyperparameters_from_args(args: Any) -> dict[str, Any]:
    """The settings that decide a run, as a reader of the card needs them."""
    world = int(getattr(args, "world_size", 1))
    accumulation = int(args.gradient_accumulation_steps)
    values: dict[str, Any] = {
        "learning_rate": args.learning_rate,
        "train_batch_size": args.train_batch_size,
        "eval_batch_size": args.eval_batch_size,
        "seed": args.seed,
    }
    mode = str(getattr(getattr(args, "parallel_mode", ""), "value", ""))
    if mode not in ("", "not_parallel", "not_distributed"):
        values["distributed_type"] = "multi-GPU" if mode == "distributed" else mode
    if world > 1:
        values["num_devices"] = world
    if accumulation > 1:
        values["gradient_accumulation_steps"] = accumulation
    if (total := args.train_batch_size * world * accumulation) != args.train_batch_size:
        values["total_train_batch_size"] = total
    if (total_eval := args.eval_batch_size * world) != args.eval_batch_size:
        values["total_eval_batch_size"] = total_eval
    values["optimizer"] = _optimizer_text(args)
    values.update(_schedule(args))
    return values


def _optimizer_text(args: Any) -> str:
    name = str(getattr(args.optim, "value", args.optim))
    extra = f", with {args.optim_args}" if getattr(args, "optim_args", None) else ""
    if "adam" in name.lower():
        betas = f"betas=({args.adam_beta1}, {args.adam_beta2}), epsilon={args.adam_epsilon}"
        return f"{name} ({betas}{extra})"
    return f"{name}{extra}"


def _schedule(args: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
    }
    if getattr(args, "warmup_steps", 0):
        values["lr_scheduler_warmup_steps"] = args.warmup_steps
    elif getattr(args, "warmup_ratio", 0):
        values["lr_scheduler_warmup_ratio"] = args.warmup_ratio
    if args.max_steps > 0:
        values["training_steps"] = args.max_steps
    else:
        values["num_epochs"] = args.num_train_epochs
    if getattr(args, "fp16", False) or getattr(args, "bf16", False):
        values["mixed_precision_training"] = "fp16" if args.fp16 else "bf16"
    if getattr(args, "label_smoothing_factor", 0.0):
        values["label_smoothing_factor"] = args.label_smoothing_factor
    return values


def framework_versions() -> dict[str, str]:
    """Installed versions of the packages a model's training depends on, read from package
    metadata (nothing is imported)."""
    found: dict[str, str] = {}
    for label, distribution in _VERSIONED:
        try:
            found[label] = importlib_metadata.version(distribution)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def existing_card_tags(path: str) -> list[str]:
    """The ``tags`` of a README.md already in the output folder, so a new draft keeps them.

    Needs PyYAML (huggingface_hub brings it); without it, or for a card without front
    matter, there is nothing to keep.
    """
    try:
        import yaml
    except ImportError:
        return []
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if not text.startswith("---\n") or (end := text.find("\n---", 3)) < 0:
        return []
    try:
        front = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError:
        logger.warning("Ignoring the unreadable YAML front matter of %s.", path)
        return []
    return as_list(front.get("tags")) if isinstance(front, dict) else []


def write_model_card(trainer: Any, **card_args: Any) -> str:
    """Draft the card for ``trainer`` and write it as ``output_dir/README.md``; return the path.

    Tags of a README.md already there, and the model's own ``model_tags``, are kept
    beside the ones passed.
    """
    path = os.path.join(trainer.args.output_dir, "README.md")
    tags = as_list(card_args.pop("tags", None))
    kept = existing_card_tags(path) if os.path.exists(path) else []
    model_tags = as_list(getattr(getattr(trainer, "model", None), "model_tags", None))
    card_args["tags"] = list(dict.fromkeys([*tags, *kept, *model_tags])) or None
    text = draft_model_card(trainer, **card_args).render()
    os.makedirs(trainer.args.output_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    return path
