"""Model input names, label names and removing the columns a model cannot take."""

from __future__ import annotations

import logging
import pickle

import datasets
import pytest
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainer_loop import (
    RemoveColumnsCollator,
    accepts_any_input,
    can_return_loss,
    default_data_collator,
    default_label_names,
    model_input_names,
    remove_unused_columns,
)


class _Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(16, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, input_ids, attention_mask=None, *args, labels=None):
        logits = self.head(self.embed(input_ids))
        if labels is None:
            return (logits,)
        return (nn.functional.cross_entropy(logits, labels), logits)


class _QuestionAnswering(nn.Module):
    def forward(self, input_ids, start_positions=None, end_positions=None):
        return input_ids


class _Pretraining(nn.Module):
    def forward(self, input_ids, labels=None, next_sentence_label=None):
        return input_ids


class _Contrastive(nn.Module):
    def forward(self, input_ids, pixel_values, return_loss=True):
        return input_ids


class _Flexible(nn.Module):
    def forward(self, input_ids, **kwargs):
        return input_ids


class _PositionalOnly(nn.Module):
    def forward(self, x, /, y):
        return x


def test_input_names_are_forward_keywords_plus_labels() -> None:
    names = model_input_names(_Classifier(), label_names=["target"])
    assert names == {"input_ids", "attention_mask", "labels", "label", "label_ids", "target"}
    assert model_input_names(_PositionalOnly()) == {"y", "label", "label_ids"}


class _OnlyKeywords(nn.Module):
    def forward(self, **batch):
        return batch


def test_only_a_var_keyword_forward_accepts_every_name() -> None:
    assert accepts_any_input(_OnlyKeywords())
    assert not accepts_any_input(_Flexible())  # named inputs + **kwargs: unnamed are unused
    assert not accepts_any_input(_Classifier())
    assert model_input_names(_Flexible()) == {"input_ids", "label", "label_ids"}


def test_wrappers_are_looked_through() -> None:
    wrapped = nn.DataParallel(_QuestionAnswering())  # no GPU: a plain wrapper
    assert "start_positions" in model_input_names(wrapped)
    assert default_label_names(wrapped) == ["start_positions", "end_positions"]


def test_plain_callables_are_read_directly() -> None:
    def forward(pixel_values, labels=None):
        return pixel_values

    assert model_input_names(forward) == {"pixel_values", "labels", "label", "label_ids"}
    with pytest.raises(TypeError, match="remove_unused_columns=False"):
        model_input_names(max)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (_Classifier(), ["labels"]),
        (_QuestionAnswering(), ["start_positions", "end_positions"]),
        (_Pretraining(), ["labels", "next_sentence_label"]),
        (_Contrastive(), []),
        (_Flexible(), ["labels"]),
        (_PositionalOnly(), []),
    ],
)
def test_default_label_names(model: nn.Module, expected: list[str]) -> None:
    assert default_label_names(model) == expected


def test_can_return_loss_needs_a_true_default() -> None:
    assert can_return_loss(_Contrastive())

    class _Optional(nn.Module):
        def forward(self, input_ids, return_loss=None):
            return input_ids

    assert not can_return_loss(_Optional())
    assert not can_return_loss(_Classifier())


def _hf_dataset() -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "input_ids": [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 1, 1]],
            "label": [0, 1, 0, 1],
            "text": ["a b c", "d e f", "g h i", "a a a"],
            "idx": [0, 1, 2, 3],
            "score": [0.1, 0.2, 0.3, 0.4],
        }
    )


def test_unused_columns_are_removed_and_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    dataset = _hf_dataset()
    with caplog.at_level(logging.INFO, logger="trainer_loop"):
        cleaned = remove_unused_columns(
            dataset, _Classifier(), label_names=["score"], description="evaluation"
        )
    assert cleaned.column_names == ["input_ids", "label", "score"]
    assert dataset.column_names == ["input_ids", "label", "text", "idx", "score"]
    [record] = [r for r in caplog.records if r.name.startswith("trainer_loop")]
    assert record.levelno == logging.INFO
    assert "text, idx" in record.getMessage()
    assert "evaluation set" in record.getMessage()
    assert "_Classifier.forward" in record.getMessage()
    batch = default_data_collator([cleaned[i] for i in range(4)])
    loss, _ = _Classifier()(batch["input_ids"], labels=batch["labels"])
    assert loss.ndim == 0


def test_removal_leaving_nothing_is_an_error_naming_both_sides() -> None:
    dataset = datasets.Dataset.from_dict({"sentence": ["a"], "idx": [0]})
    with pytest.raises(ValueError) as caught:
        remove_unused_columns(dataset, _Classifier(), description="training")
    message = str(caught.value)
    assert "['sentence', 'idx']" in message
    assert "'input_ids'" in message
    assert "training set" in message
    assert "remove_unused_columns=False" in message


def test_nothing_to_remove_returns_the_same_dataset(caplog: pytest.LogCaptureFixture) -> None:
    dataset = datasets.Dataset.from_dict({"input_ids": [[1]], "labels": [0]})
    with caplog.at_level(logging.INFO, logger="trainer_loop"):
        assert remove_unused_columns(dataset, _Classifier()) is dataset
        assert remove_unused_columns(_hf_dataset(), _OnlyKeywords()).column_names[2] == "text"
    assert caplog.text == ""
    torch_dataset = [{"input_ids": [1], "text": "a"}]
    assert remove_unused_columns(torch_dataset, _Classifier()) is torch_dataset


class _Rows(Dataset):
    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": [index, index + 1], "label": index % 2, "idx": index, "text": "t"}


def test_collator_wrapper_drops_keys_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("trainer_loop.test")
    collator = RemoveColumnsCollator(
        default_data_collator,
        model_input_names(_Classifier()),
        logger=log,
        description="training",
        model_name="_Classifier",
    )
    loader = DataLoader(_Rows(), batch_size=4, collate_fn=collator)
    with caplog.at_level(logging.INFO, logger="trainer_loop"):
        batches = list(loader)
    assert [set(batch) for batch in batches] == [{"input_ids", "labels"}] * 2
    [record] = caplog.records
    assert record.getMessage().startswith(
        "The following columns in the training set don't have a corresponding argument in "
        "`_Classifier.forward` and have been ignored: idx, text."
    )


def test_collator_wrapper_passes_through_when_it_cannot_filter() -> None:
    keep_all = RemoveColumnsCollator(default_data_collator, None)
    assert set(keep_all([{"x": 1, "idx": 2}])) == {"x", "idx"}
    tuples = RemoveColumnsCollator(lambda rows: rows, {"x"})
    assert tuples([(1, 2)]) == [(1, 2)]


def test_collator_wrapper_takes_the_references_positional_order() -> None:
    collator = RemoveColumnsCollator(default_data_collator, {"x"}, None, "Net", "evaluation")
    assert (collator.model_name, collator.description) == ("Net", "evaluation")


def test_collator_wrapper_pickles_for_worker_processes() -> None:
    collator = RemoveColumnsCollator(
        default_data_collator, {"x"}, logger=logging.getLogger("trainer_loop.test")
    )
    restored = pickle.loads(pickle.dumps(collator))
    assert set(restored([{"x": 1, "y": 2}])) == {"x"}
    assert restored.logger is logging.getLogger("trainer_loop.test")
