"""default_data_collator and DataCollatorWithPadding."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from trainer_loop import DataCollatorWithPadding, default_data_collator


def test_mixed_value_types_become_stacked_tensors() -> None:
    features = [
        {
            "pixel": torch.full((2, 3), float(i)),
            "mask": np.ones(4, dtype=np.int32) * i,
            "ids": [i, i + 1, i + 2],
            "weight": 0.5 * i,
            "count": i,
        }
        for i in range(3)
    ]
    batch = default_data_collator(features)
    assert set(batch) == {"pixel", "mask", "ids", "weight", "count"}
    assert batch["pixel"].shape == (3, 2, 3)
    assert batch["pixel"][2].eq(2.0).all()
    assert batch["mask"].dtype == torch.int32
    assert batch["mask"].tolist() == [[0] * 4, [1] * 4, [2] * 4]
    assert batch["ids"].tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    assert batch["weight"].dtype == torch.float32
    assert batch["count"].dtype == torch.int64


def test_python_values_get_torch_tensor_dtypes() -> None:
    features = [{"flag": i == 1, "mixed": [i, 2.5], "big": [2**40, i]} for i in range(2)]
    batch = default_data_collator(features)
    for key, value in batch.items():
        expected = torch.tensor([f[key] for f in features])
        assert value.dtype == expected.dtype, key
        assert torch.equal(value, expected), key
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert default_data_collator(features)["mixed"].dtype == torch.float64
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize(
    ("labels", "dtype"),
    [
        ([1, 0, 1], torch.int64),
        ([True, False, True], torch.int64),
        ([np.int32(1), np.int32(0), np.int32(1)], torch.int64),
        ([0.5, 1.5, 2.5], torch.float32),
        ([torch.tensor(1, dtype=torch.int32)] * 3, torch.int64),
        ([torch.tensor(0.5, dtype=torch.float64)] * 3, torch.float64),
    ],
)
def test_label_becomes_labels_with_int_or_float_dtype(labels: list, dtype: torch.dtype) -> None:
    batch = default_data_collator([{"x": [1.0], "label": label} for label in labels])
    assert "label" not in batch
    assert batch["labels"].dtype == dtype
    assert batch["labels"].shape == (3,)


def test_label_ids_become_labels() -> None:
    batch = default_data_collator([{"label_ids": [i, -100, 2]} for i in range(2)])
    assert list(batch) == ["labels"]
    assert batch["labels"].dtype == torch.int64
    assert batch["labels"].tolist() == [[0, -100, 2], [1, -100, 2]]
    multi_label = default_data_collator([{"label_ids": [0.0, 1.0]}, {"label_ids": [1.0, 0.0]}])
    assert multi_label["labels"].dtype == torch.float32
    stacked = default_data_collator([{"label_ids": torch.tensor([1, 2])}] * 2)
    assert stacked["labels"].tolist() == [[1, 2], [1, 2]]


def test_strings_and_none_are_left_out() -> None:
    features = [
        {"text": "hello", "tokens": ["a", "b"], "raw": b"\x00", "label": None, "x": [1, 2]},
        {"text": "world", "tokens": ["c", "d"], "raw": b"\x01", "label": None, "x": [3, 4]},
    ]
    batch = default_data_collator(features)
    assert list(batch) == ["x"]


@dataclasses.dataclass
class _Example:
    input_ids: list[int]
    label: int
    note: str = "ignored"


class _Pair(NamedTuple):
    input_ids: list[int]
    label: int


class _Plain:
    def __init__(self, input_ids: list[int], label: int) -> None:
        self.input_ids = input_ids
        self.label = label


@pytest.mark.parametrize("cls", [_Example, _Pair, _Plain])
def test_objects_with_attributes_are_collated(cls: type) -> None:
    batch = default_data_collator([cls([1, 2], 0), cls([3, 4], 1)])
    assert set(batch) == {"input_ids", "labels"}
    assert batch["input_ids"].tolist() == [[1, 2], [3, 4]]
    assert batch["labels"].tolist() == [0, 1]


def test_ragged_values_name_the_key_and_the_fix() -> None:
    with pytest.raises(ValueError, match=r"'input_ids'.*DataCollatorWithPadding"):
        default_data_collator([{"input_ids": [1, 2, 3]}, {"input_ids": [1]}])
    with pytest.raises(ValueError, match="'label_ids'"):
        default_data_collator([{"label_ids": [1, 2, 3]}, {"label_ids": [1]}])


def test_empty_batch_and_other_tensor_types_are_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        default_data_collator([])
    with pytest.raises(ValueError, match="return_tensors='np'"):
        default_data_collator([{"x": 1}], return_tensors="np")
    with pytest.raises(TypeError, match="int"):
        default_data_collator([1, 2])


def test_default_collator_in_a_dataloader() -> None:
    data = [{"x": torch.randn(3), "label": i % 2, "id": f"row-{i}"} for i in range(10)]
    loader = DataLoader(data, batch_size=4, collate_fn=default_data_collator)
    batches = list(loader)
    assert [b["x"].shape[0] for b in batches] == [4, 4, 2]
    assert torch.cat([b["labels"] for b in batches]).tolist() == [i % 2 for i in range(10)]


# --- DataCollatorWithPadding, with a real tokenizer built offline ------------------------


@pytest.fixture(scope="module")
def tokenizer():
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[PAD]": 0, "[UNK]": 1, "the": 2, "cat": 3, "sat": 4, "on": 5, "mat": 6}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]"
    )


def _encode(tokenizer, texts: list[str], **extra) -> list[dict]:
    return [
        dict(tokenizer(text), **{k: v[i] for k, v in extra.items()}) for i, text in enumerate(texts)
    ]


def test_padding_to_longest_renames_label(tokenizer) -> None:
    features = _encode(tokenizer, ["the cat sat on the mat", "the cat"], label=[1, 0])
    batch = DataCollatorWithPadding(tokenizer)(features)
    assert batch["input_ids"].tolist() == [[2, 3, 4, 5, 2, 6], [2, 3, 0, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 6, [1, 1, 0, 0, 0, 0]]
    assert "label" not in batch
    assert batch["labels"].tolist() == [1, 0]


def test_pad_to_multiple_of_and_max_length(tokenizer) -> None:
    features = _encode(tokenizer, ["the cat sat", "cat"], label_ids=[[1, 2, 3], [4]])
    features = [{k: v for k, v in f.items() if k != "label_ids"} for f in features]
    batch = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=4)(features)
    assert batch["input_ids"].shape == (2, 4)
    fixed = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=7)(features)
    assert fixed["input_ids"].shape == (2, 7)
    assert fixed["attention_mask"].sum(dim=1).tolist() == [3, 1]


def test_label_ids_are_renamed_too(tokenizer) -> None:
    features = _encode(tokenizer, ["the cat", "on mat"], label_ids=[3, 4])
    batch = DataCollatorWithPadding(tokenizer)(features)
    assert "label_ids" not in batch
    assert batch["labels"].tolist() == [3, 4]


def test_padding_collator_in_a_dataloader(tokenizer) -> None:
    texts = ["the cat", "the cat sat", "mat", "the cat sat on the mat", "on"]
    features = _encode(tokenizer, texts, label=[0, 1, 0, 1, 0])
    loader = DataLoader(features, batch_size=2, collate_fn=DataCollatorWithPadding(tokenizer))
    shapes = [tuple(batch["input_ids"].shape) for batch in loader]
    assert shapes == [(2, 3), (2, 6), (1, 1)]


def test_tokenizer_without_pad_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"pad\(\) method, got dict"):
        DataCollatorWithPadding({})


@pytest.mark.parametrize(
    ("key", "values", "dtype"),
    [
        ("label", [3, 1], torch.int64),
        ("label", [np.int32(3), np.int32(1)], torch.int64),
        ("label", [0.5, 1.5], torch.float32),
        ("label", [[1, 0, 1], [0, 1, 0]], torch.float32),  # multi-hot: a float target
        ("label", [1, 2.5], torch.float32),  # not truncated to [1, 2], as the reference does
        ("label_ids", [[1, 0, 2], [2, 2, 0]], torch.int64),
        ("label_ids", [[0.5, 1.0], [1.0, 0.0]], torch.float32),
    ],
)
def test_label_dtype_follows_the_first_examples_value(
    key: str, values: list, dtype: torch.dtype
) -> None:
    batch = default_data_collator([{"x": [1.0], key: value} for value in values])
    assert batch["labels"].dtype == dtype


def test_label_wins_over_label_ids() -> None:
    batch = default_data_collator(
        [{"label": 1, "label_ids": [7, 7]}, {"label": 0, "label_ids": [7, 7]}]
    )
    assert batch["labels"].tolist() == [1, 0]


def test_a_multi_label_classifier_trains_on_multi_hot_lists(tmp_path) -> None:
    """Integer multi-hot lists must reach the model as floats: its multi-label loss
    (BCE) refuses int64 targets, and it tells multi-label apart by the float dtype."""
    transformers = pytest.importorskip("transformers")
    from trainer_args import TrainingArguments
    from trainer_loop import Trainer

    config = transformers.BertConfig(
        vocab_size=20,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        num_labels=3,
    )
    model = transformers.BertForSequenceClassification(config)
    rows = [{"input_ids": [1, 2 + i % 5, 3], "label": [i % 2, 1, 0]} for i in range(8)]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=2,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    Trainer(model=model, args=args, train_dataset=rows).train()
    assert model.config.problem_type == "multi_label_classification"
