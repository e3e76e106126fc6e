"""How the Trainer consumes data where a script written for transformers 5 relies on it:
streams of 🤗 datasets, the default collator for each kind of processing class, a
stream's last batch, the input whose length groups examples, logged token rates."""

from __future__ import annotations

import datasets
import pytest
import torch
from torch import nn
from torch.utils.data import IterableDataset

from trainer_args import TrainingArguments
from trainer_loop import DataCollatorWithPadding, Trainer, default_data_collator
from trainer_loop._collators import pads_sequences


class Recorder(nn.Module):
    """A regression on ``x`` that records the rows of every batch it sees."""

    main_input_name = "x"  # what include_num_input_tokens_seen counts

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.batches: list[list[float]] = []

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        self.batches.append(x.flatten().tolist())
        prediction = x.flatten() * self.weight
        loss = ((prediction - labels) ** 2).mean() if labels is not None else None
        return {"loss": loss, "logits": prediction}


class Counting(IterableDataset):
    def __init__(self, size: int) -> None:
        self.size = size

    def __iter__(self):
        for i in range(self.size):
            yield {"x": torch.tensor([float(i)]), "labels": torch.tensor(float(i))}


def _args(tmp_path, **overrides) -> TrainingArguments:
    options = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        save_strategy="no",
    )
    options.update(overrides)
    return TrainingArguments(**options)


def test_a_streamed_datasets_dataset_has_its_unused_columns_removed(tmp_path) -> None:
    rows = {"x": [[float(i)] for i in range(8)], "labels": [float(i) for i in range(8)]}
    rows["text"] = [f"row {i}" for i in range(8)]  # forward has no such argument
    stream = datasets.Dataset.from_dict(rows).to_iterable_dataset()
    model = Recorder()
    trainer = Trainer(model=model, args=_args(tmp_path, max_steps=2), train_dataset=stream)
    assert trainer.train().global_step == 2
    assert model.batches[0] == [0.0, 1.0, 2.0, 3.0]
    assert "eval_loss" in trainer.evaluate(stream)


def test_a_streams_last_shorter_batch_is_kept_even_with_drop_last(tmp_path) -> None:
    model = Recorder()
    args = _args(tmp_path, max_steps=3, dataloader_drop_last=True)
    Trainer(model=model, args=args, train_dataset=Counting(6)).train()
    assert model.batches == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0], [0.0, 1.0, 2.0, 3.0]]
    model.batches.clear()
    Trainer(model=model, args=_args(tmp_path, dataloader_drop_last=True)).evaluate(Counting(5))
    assert model.batches == [[0.0, 1.0, 2.0, 3.0], [4.0]]


def test_the_default_collator_pads_for_audio_and_own_tokenizers() -> None:
    transformers = pytest.importorskip("transformers")
    audio_extractor = transformers.Wav2Vec2FeatureExtractor()
    assert pads_sequences(audio_extractor)
    assert not pads_sequences(None)

    class OwnTokenizer:  # not transformers': padding is what its pad() is for
        def pad(self, features, **kwargs):
            return features

    assert pads_sequences(OwnTokenizer())
    audio_trainer = Trainer(model=Recorder(), processing_class=audio_extractor)
    assert isinstance(audio_trainer.data_collator, DataCollatorWithPadding)


def test_the_default_collator_does_not_pad_for_an_image_processor() -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("PIL")  # transformers' image processors need Pillow
    image_processor = transformers.ViTImageProcessor(size={"height": 8, "width": 8})
    assert not pads_sequences(image_processor)  # has a pad(), but images come sized
    trainer = Trainer(model=Recorder(), processing_class=image_processor)
    assert trainer.data_collator is default_data_collator


def test_group_by_length_measures_the_processing_class_first_input(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    extractor = transformers.Wav2Vec2FeatureExtractor()  # model_input_names[0]: input_values
    lengths = [3, 9, 5, 7, 2, 8, 4, 6]
    rows = [{"input_values": [0.1] * n, "labels": 0} for n in lengths]
    args = _args(tmp_path, group_by_length=True)
    trainer = Trainer(model=Recorder(), args=args, processing_class=extractor)
    sampler = trainer._get_train_sampler(rows)
    assert sampler.lengths == lengths


def test_training_logs_carry_the_token_rate_of_the_run(tmp_path) -> None:
    rows = [{"x": [float(i)], "labels": float(i)} for i in range(8)]
    args = _args(tmp_path, max_steps=4, logging_steps=2, include_num_input_tokens_seen=True)
    trainer = Trainer(model=Recorder(), args=args, train_dataset=rows)
    trainer.train()
    step_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["num_input_tokens_seen"] for entry in step_logs] == [8, 16]
    assert all(entry["train_tokens_per_second"] > 0 for entry in step_logs)
    assert all(entry["train_runtime"] >= 0 for entry in step_logs)


def test_counting_tokens_without_the_main_input_warns_once(tmp_path, caplog) -> None:
    class Unnamed(Recorder):
        main_input_name = "input_ids"  # the batches hold "x"

    rows = [{"x": [float(i)], "labels": float(i)} for i in range(8)]
    args = _args(tmp_path, max_steps=2, include_num_input_tokens_seen=True)
    Trainer(model=Unnamed(), args=args, train_dataset=rows).train()
    warnings = [r for r in caplog.records if "no token is counted" in r.getMessage()]
    assert len(warnings) == 1
    assert "'input_ids'" in warnings[0].getMessage()


class _ReferenceStyleLoaders(Trainer):
    """A subclass whose ``get_train_dataloader`` is written as transformers' own: the
    collator of a non-🤗 dataset is filtered by ``_get_collator_with_removed_columns``."""

    def get_train_dataloader(self):
        collator = self._get_collator_with_removed_columns(self.data_collator, "training")
        return torch.utils.data.DataLoader(
            self.train_dataset, batch_size=self._train_batch_size, collate_fn=collator
        )


def test_a_reference_style_loader_override_filters_its_examples(tmp_path) -> None:
    rows = [{"x": [float(i)], "labels": float(i), "note": "unused"} for i in range(4)]
    model = Recorder()
    trainer = _ReferenceStyleLoaders(
        model=model, args=_args(tmp_path, max_steps=1), train_dataset=rows
    )
    assert trainer.train().global_step == 1  # "note" would be an unexpected keyword
    assert model.batches == [[0.0, 1.0, 2.0, 3.0]]
    plain = Trainer(model=Recorder(), args=_args(tmp_path, remove_unused_columns=False))
    assert plain._get_collator_with_removed_columns(default_data_collator) is default_data_collator


def test_the_collator_hook_of_a_subclass_serves_every_loader(tmp_path) -> None:
    seen: list[str | None] = []

    class Hooked(Trainer):
        def _get_collator_with_removed_columns(self, data_collator, description=None):
            seen.append(description)
            return super()._get_collator_with_removed_columns(data_collator, description)

    rows = [{"x": [float(i)], "labels": float(i), "note": "unused"} for i in range(4)]
    trainer = Hooked(model=Recorder(), args=_args(tmp_path, max_steps=1), train_dataset=rows)
    trainer.train()
    trainer.evaluate(rows)
    assert seen == ["training", "evaluation"]


def test_removing_columns_without_a_description_names_no_set(tmp_path, caplog) -> None:
    rows = datasets.Dataset.from_dict({"x": [[1.0]], "labels": [1.0], "note": ["unused"]})
    trainer = Trainer(model=Recorder(), args=_args(tmp_path))
    with caplog.at_level("INFO"):
        assert trainer._remove_unused_columns(rows).column_names == ["x", "labels"]
    assert (
        "columns in the dataset don't have a corresponding argument in `Recorder.forward`"
        in caplog.text
    )
    assert "None" not in caplog.text
