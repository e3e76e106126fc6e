"""A model card draft (the README.md pushed beside the weights) and how it is written out.

The card has two halves: YAML front matter the Hub reads (license, tags, datasets, and
a ``model-index`` whose results feed the Hub's leaderboards), and Markdown a person
reads. :class:`ModelCardDraft` holds what the Trainer knows; :mod:`._model_card_sources`
fills it from a trainer. The YAML is written by a small emitter here so that drafting a
card needs no YAML library (the metadata is only mappings, lists and scalars).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

TASK_NAMES = {
    "fill-mask": "Masked Language Modeling",
    "text-generation": "Causal Language Modeling",
    "text-classification": "Text Classification",
    "token-classification": "Token Classification",
    "question-answering": "Question Answering",
    "multiple-choice": "Multiple Choice",
    "summarization": "Summarization",
    "translation": "Translation",
    "text2text-generation": "Sequence-to-sequence Language Modeling",
    "image-classification": "Image Classification",
    "object-detection": "Object Detection",
    "image-segmentation": "Image Segmentation",
    "audio-classification": "Audio Classification",
    "automatic-speech-recognition": "Automatic Speech Recognition",
}
"""Hub task ids the ``model-index`` can name, with their display names."""

METRIC_TYPES = (
    "accuracy",
    "bleu",
    "f1",
    "matthews_correlation",
    "pearsonr",
    "precision",
    "recall",
    "rouge",
    "sacrebleu",
    "spearmanr",
    "wer",
)
"""Metric ids the Hub recognises; other metrics appear in the text, not the index."""

UNDOCUMENTED = "Not documented yet: add it before sharing the model."


def as_list(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``None`` -> ``[]``, one string -> a list of it, a sequence -> a list copy."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [v for v in value if v is not None]


@dataclass
class ModelCardDraft:
    """Everything a card says; the fields mirror ``Trainer.create_model_card``'s arguments.

    ``final_results`` are the last evaluation's metrics by display name
    (``{"Loss": 0.12, "Accuracy": 0.9}``); ``training_results`` one row per evaluation
    during training; ``framework_versions`` the packages the model was trained with.
    """

    model_name: str
    language: list[str] = field(default_factory=list)
    license: str | None = None
    tags: list[str] = field(default_factory=list)
    finetuned_from: str | None = None
    tasks: list[str] = field(default_factory=list)
    dataset: list[str] = field(default_factory=list)
    dataset_tags: list[str] = field(default_factory=list)
    dataset_args: list[str | None] = field(default_factory=list)
    dataset_metadata: list[dict[str, Any]] = field(default_factory=list)
    final_results: dict[str, Any] | None = None
    training_results: list[dict[str, Any]] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    framework_versions: dict[str, str] = field(default_factory=dict)
    library_name: str | None = None

    # ------------------------------------------------------------ metadata
    def metric_types(self) -> dict[str, str]:
        """Hub metric id -> display name, for the final results the Hub recognises."""
        found: dict[str, str] = {}
        for name in self.final_results or {}:
            key = name.lower().replace(" ", "_")
            if key in METRIC_TYPES:
                found[key] = name
            elif key == "rouge1":
                found["rouge"] = name
        return found

    def metadata(self) -> dict[str, Any]:
        """The front matter, in the order the Hub shows it; empty entries left out."""
        entries: dict[str, Any] = {
            "library_name": self.library_name,
            "language": self.language,
            "license": self.license,
            "base_model": self.finetuned_from or None,
            "tags": self.tags,
            "datasets": self.dataset_tags,
            "metrics": list(self.metric_types()),
        }
        metadata = {key: value for key, value in entries.items() if value}
        metadata["model-index"] = [{"name": self.model_name, "results": self._index_results()}]
        return metadata

    def _index_results(self) -> list[dict[str, Any]]:
        """One result per (task, dataset) pair; the Hub rejects results missing any of
        task, dataset or metrics, so only complete ones are listed."""
        metrics = [
            {"name": name, "type": key, "value": (self.final_results or {})[name]}
            for key, name in self.metric_types().items()
        ]
        tasks = [t for t in self.tasks if t in TASK_NAMES]
        if not (metrics and tasks and self.dataset_tags):
            return []
        return [
            {
                "task": {"name": TASK_NAMES[task], "type": task},
                "dataset": self._dataset_entry(index),
                "metrics": metrics,
            }
            for task in tasks
            for index in range(len(self.dataset_tags))
        ]

    def _dataset_entry(self, index: int) -> dict[str, Any]:
        tag = self.dataset_tags[index]
        names = self.dataset or self.dataset_tags
        entry: dict[str, Any] = {"name": names[index] if index < len(names) else tag, "type": tag}
        if index < len(self.dataset_metadata):
            entry.update(self.dataset_metadata[index])
        if index < len(self.dataset_args) and self.dataset_args[index] is not None:
            entry["args"] = self.dataset_args[index]
        return entry

    # ---------------------------------------------------------------- text
    def render(self) -> str:
        """The README.md text: front matter, then the Markdown sections."""
        blocks = [
            "<!-- Drafted by the Trainer from its arguments and logs: review it, and fill "
            "in the sections marked as not documented. -->",
            f"# {self.model_name}",
            self._summary(),
            *(f"## {title}\n\n{UNDOCUMENTED}" for title in _FREE_TEXT_SECTIONS),
            "## How it was trained",
            f"### Hyperparameters\n\n{_bullets(self.hyperparameters) or UNDOCUMENTED}",
        ]
        if self.training_results:
            blocks.append(
                f"### Evaluations during training\n\n{markdown_table(self.training_results)}"
            )
        if self.framework_versions:
            blocks.append(f"### Software\n\n{_bullets(self.framework_versions)}")
        text = "\n\n".join(block.rstrip("\n") for block in blocks)
        return f"---\n{to_yaml(self.metadata())}---\n\n{text}\n"

    def _summary(self) -> str:
        origin = (
            f"A fine-tuned version of [{self.finetuned_from}]"
            f"(https://huggingface.co/{self.finetuned_from})"
            if self.finetuned_from
            else "A model trained from scratch"
        )
        text = f"{origin}, on {_dataset_phrase(self.dataset)}."
        if self.final_results:
            text += f"\n\nResults of the last evaluation:\n\n{_bullets(self.final_results)}"
        return text


_FREE_TEXT_SECTIONS = ("Model description", "Intended uses and limitations", "Data")


def _dataset_phrase(datasets: list[str]) -> str:
    if not datasets:
        return "a dataset that was not named"
    if len(datasets) == 1:
        return f"the {datasets[0]} dataset"
    return ", ".join(datasets[:-1]) + f" and {datasets[-1]} (datasets)"


def format_value(value: Any) -> str:
    """Floats to at most four decimals (a loss of 0.123456789 reads 0.1235); short ones
    and exponent forms (a learning rate of 5e-05) as Python writes them."""
    if not isinstance(value, float):
        return str(value)
    text = str(value)
    if "e" in text or len(text.partition(".")[2]) <= 4:
        return text
    return f"{value:.4f}" if abs(value) >= 1e-3 else f"{value:.4g}"


def _bullets(values: dict[str, Any]) -> str:
    return "".join(f"- {name}: {format_value(value)}\n" for name, value in values.items())


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of ``rows`` (columns from the first row), cells padded to align."""
    columns = list(rows[0])
    cells = [[format_value(row.get(column, "")) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)
    ]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |\n"

    rule = "|" + "|".join(":" + "-" * w + ":" for w in widths) + "|\n"
    return line(columns) + rule + "".join(line(values) for values in cells)


# ------------------------------------------------------------------- YAML
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "none", "y", "n", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)  # finite numbers; JSON's forms are valid YAML
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for mappings, lists and scalars (what card metadata is made of)."""
    pad = " " * indent
    if isinstance(value, dict):
        return "".join(_yaml_entry(f"{pad}{_scalar(k)}:", v, indent) for k, v in value.items())
    if isinstance(value, list):
        return "".join(_yaml_item(pad, item, indent) for item in value) if value else f"{pad}[]\n"
    return f"{pad}{_scalar(value)}\n"


def _yaml_entry(prefix: str, value: Any, indent: int) -> str:
    if isinstance(value, (dict, list)) and value:
        return f"{prefix}\n{to_yaml(value, indent + 2)}"
    empty = {} if isinstance(value, dict) else []
    return f"{prefix} {_scalar(value) if value != empty else json.dumps(value)}\n"


def _yaml_item(pad: str, item: Any, indent: int) -> str:
    if isinstance(item, dict) and item:
        body = to_yaml(item, indent + 2)
        return f"{pad}- {body[indent + 2 :]}"  # the first key goes on the dash's line
    if isinstance(item, list) and item:
        return f"{pad}-\n{to_yaml(item, indent + 2)}"
    return f"{pad}- {_scalar(item) if item not in ({}, []) else json.dumps(item)}\n"
