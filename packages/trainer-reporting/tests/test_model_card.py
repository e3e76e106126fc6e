"""Model card drafts: the front matter the Hub reads, and the text from the trainer's logs.

The front matter is read back with huggingface_hub's own card parser (the one the Hub
ecosystem uses), so a draft it cannot read fails here.
"""

from __future__ import annotations

import os
from importlib import metadata as importlib_metadata
from types import SimpleNamespace

import pytest
import yaml

from trainer_args import TrainingArguments
from trainer_core import TrainerState
from trainer_reporting import ModelCardDraft, draft_model_card, write_model_card
from trainer_reporting._model_card import format_value, markdown_table, to_yaml
from trainer_reporting._model_card_sources import (
    framework_versions,
    hyperparameters_from_args,
    results_from_log_history,
)

LOGS = [
    {"loss": 2.5, "epoch": 0.5, "step": 1},
    {"eval_loss": 2.0, "eval_accuracy": 0.5, "eval_runtime": 0.1, "epoch": 0.5, "step": 1},
    {"loss": 1.25, "epoch": 1.0, "step": 2},
    {"eval_loss": 1.0, "eval_accuracy": 0.75, "eval_matthews_correlation": 0.3, "step": 2},
    {"train_runtime": 3.0, "train_loss": 1.9, "epoch": 1.0, "step": 2},
    {"eval_loss": 0.9, "eval_accuracy": 0.8, "eval_samples_per_second": 9.0, "step": 2},
]


class SomethingForSequenceClassification:
    """A model class named as transformers names a classification model."""

    def __init__(self, name_or_path: str) -> None:
        self.config = SimpleNamespace(_name_or_path=name_or_path)


def model_card_class() -> type:
    """huggingface_hub's card parser (imported lazily: it is an optional dependency)."""
    from huggingface_hub import ModelCard

    return ModelCard


def fake_trainer(tmp_path, model=None, eval_dataset=None, log_history=LOGS, **args):
    arguments = TrainingArguments(output_dir=str(tmp_path / "my-model"), use_cpu=True, **args)
    state = TrainerState()
    state.log_history = list(log_history)
    return SimpleNamespace(
        args=arguments, state=state, model=model, eval_dataset=eval_dataset, train_dataset=None
    )


def test_log_history_gives_one_row_per_evaluation_during_training_and_the_last_results():
    rows, final = results_from_log_history(LOGS)
    assert rows == [
        {"Training Loss": 2.5, "Epoch": 0.5, "Step": 1, "Validation Loss": 2.0, "Accuracy": 0.5},
        {
            "Training Loss": 1.25,
            "Epoch": None,
            "Step": 2,
            "Validation Loss": 1.0,
            "Accuracy": 0.75,
            "Matthews Correlation": 0.3,
        },
    ]
    assert final == {"Loss": 0.9, "Accuracy": 0.8}  # the evaluation after training


def test_an_evaluation_before_any_training_loss_reads_no_log():
    rows, final = results_from_log_history([{"eval_loss": 3.0, "step": 0}, {"train_runtime": 1}])
    assert rows[0]["Training Loss"] == "No log"
    assert final == {"Loss": 3.0}
    assert results_from_log_history([{"loss": 1.0}]) == ([], None)


def test_hyperparameters_describe_the_run_from_the_arguments(tmp_path):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        use_cpu=True,
        learning_rate=3e-4,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        warmup_steps=5,
        max_steps=10,
        label_smoothing_factor=0.1,
    )
    values = hyperparameters_from_args(args)
    assert values["learning_rate"] == 3e-4
    assert values["train_batch_size"] == 4
    assert values["gradient_accumulation_steps"] == 2
    assert values["total_train_batch_size"] == 8
    assert values["optimizer"] == "adamw_torch (betas=(0.9, 0.999), epsilon=1e-08)"
    assert values["lr_scheduler_type"] == "linear"
    assert values["lr_scheduler_warmup_steps"] == 5
    assert values["training_steps"] == 10
    assert values["label_smoothing_factor"] == 0.1
    assert "num_epochs" not in values and "total_eval_batch_size" not in values


def test_card_metadata_names_base_model_task_dataset_and_hub_metrics(tmp_path):
    dataset = SimpleNamespace(builder_name="glue", config_name="mrpc", split="validation")
    model = SomethingForSequenceClassification("org/base-model")
    trainer = fake_trainer(tmp_path, model=model, eval_dataset=dataset)
    draft = draft_model_card(trainer, language="en", license="apache-2.0", tags="nlp")
    card = model_card_class()(draft.render())
    data = card.data.to_dict()
    assert data["base_model"] == "org/base-model"
    assert data["language"] == ["en"]
    assert data["license"] == "apache-2.0"
    assert data["tags"] == ["nlp", "generated_from_trainer"]
    assert data["datasets"] == ["glue"]
    assert data["metrics"] == ["accuracy"]
    [index] = data["model-index"]
    assert index["name"] == "my-model"
    [result] = index["results"]
    assert result["task"] == {"name": "Text Classification", "type": "text-classification"}
    assert result["dataset"] == {
        "name": "glue",
        "type": "glue",
        "config": "mrpc",
        "split": "validation",
        "args": "mrpc",
    }
    assert result["metrics"] == [{"name": "Accuracy", "type": "accuracy", "value": 0.8}]


def test_card_text_holds_results_table_hyperparameters_and_versions(tmp_path):
    text = draft_model_card(fake_trainer(tmp_path), model_name="tiny").render()
    assert "# tiny" in text
    assert "A model trained from scratch, on a dataset that was not named." in text
    assert "- Accuracy: 0.8\n" in text
    assert "| Training Loss | Epoch | Step | Validation Loss | Accuracy |" in text
    assert "| 2.5           | 0.5   | 1    | 2.0             | 0.5      |" in text
    assert "- learning_rate: 5e-05\n" in text
    assert "- num_epochs: 3.0\n" in text
    assert "\n\n\n" not in text


def test_software_section_lists_the_installed_packages_without_importing_them(tmp_path):
    versions = framework_versions()
    for label, distribution in (("Transformers", "transformers"), ("PyTorch", "torch")):
        assert versions.get(label) == _version(distribution)
    text = draft_model_card(fake_trainer(tmp_path)).render()
    for label, version in versions.items():
        assert f"- {label}: {version}\n" in text


def _version(distribution: str) -> str | None:
    try:
        return importlib_metadata.version(distribution)
    except importlib_metadata.PackageNotFoundError:
        return None


def test_local_folders_and_local_data_are_not_claimed_as_hub_sources(tmp_path):
    model = SomethingForSequenceClassification(str(tmp_path))  # a folder, not a Hub id
    local = SimpleNamespace(builder_name="json", config_name="default", split="train")
    draft = draft_model_card(fake_trainer(tmp_path, model=model, eval_dataset=local))
    assert draft.finetuned_from is None
    assert draft.dataset_tags == []
    assert draft.metadata()["model-index"] == [{"name": "my-model", "results": []}]


def test_results_without_task_or_dataset_stay_out_of_the_index():
    draft = ModelCardDraft(model_name="m", tasks=["text-classification"], final_results={"F1": 1.0})
    assert draft.metadata()["model-index"][0]["results"] == []
    assert draft.metadata()["metrics"] == ["f1"]


def test_writing_the_card_keeps_tags_of_the_card_already_there_and_the_models(tmp_path):
    trainer = fake_trainer(tmp_path, model=SimpleNamespace(model_tags=["peft"]))
    os.makedirs(trainer.args.output_dir)
    readme = os.path.join(trainer.args.output_dir, "README.md")
    with open(readme, "w", encoding="utf-8") as file:
        file.write("---\ntags:\n- kept-tag\n---\n# old card\n")
    assert write_model_card(trainer, tags=["new-tag"]) == readme
    data = model_card_class().load(readme).data.to_dict()
    assert data["tags"] == ["new-tag", "kept-tag", "peft", "generated_from_trainer"]


@pytest.mark.parametrize(
    "value",
    [
        {"plain": "text", "number": 3, "ratio": 0.25, "flag": True, "none": None},
        {"looks like bool": "yes", "colon": "a: b", "numeric string": "1.0", "empty": ""},
        {"quote": 'say "hi"', "hash": "# not a comment", "unicode": "émoji ✓", "lead": "-x"},
        {"nested": [{"a": [1, 2], "b": {"c": "d"}}, {"e": []}], "empty map": {}},
        {"model-index": [{"name": "m", "results": []}], "list": ["a", ["b", "c"]]},
    ],
)
def test_yaml_emitter_round_trips_through_a_yaml_parser(value):
    assert yaml.safe_load(to_yaml(value)) == value


def test_numbers_read_well_in_the_text():
    assert format_value(0.123456789) == "0.1235"
    assert format_value(5e-05) == "5e-05"
    assert format_value(0.5) == "0.5"
    assert format_value(0.000123456) == "0.0001235"
    assert format_value("No log") == "No log"
    table = markdown_table([{"A": 1, "Longer": 0.123456}])
    assert table == "| A | Longer |\n|:-:|:------:|\n| 1 | 0.1235 |\n"
