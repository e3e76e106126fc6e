"""Weights on disk: single files, shards with an index, tied tensors, .bin, errors."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from trainer_checkpoint import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_NAME,
    NotACheckpointError,
    load_weights,
    parse_size,
    read_weights,
    save_weights,
)


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.body = nn.Linear(8, 8)
        self.head = nn.Linear(8, 16, bias=False)
        self.head.weight = self.embed.weight


def _fresh(seed: int) -> Tied:
    torch.manual_seed(seed)
    return Tied()


def _equal(a: nn.Module, b: nn.Module) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_single_file_round_trip_keeps_ties(tmp_path) -> None:
    source, target = _fresh(0), _fresh(1)
    written = save_weights(source.state_dict(), str(tmp_path))
    assert [os.path.basename(p) for p in written] == [SAFE_WEIGHTS_NAME]
    assert "head.weight" not in read_weights(str(tmp_path))  # the alias is written once
    load_weights(str(tmp_path), target)
    assert _equal(source, target)
    assert target.head.weight is target.embed.weight


def test_weights_past_the_shard_size_are_split_with_an_index(tmp_path) -> None:
    source, target = _fresh(0), _fresh(1)
    save_weights(source.state_dict(), str(tmp_path), max_shard_size="300B")
    with open(tmp_path / SAFE_WEIGHTS_INDEX_NAME, encoding="utf-8") as handle:
        index = json.load(handle)
    shards = set(index["weight_map"].values())
    assert len(shards) > 1 and all((tmp_path / name).exists() for name in shards)
    assert not (tmp_path / SAFE_WEIGHTS_NAME).exists()
    load_weights(str(tmp_path), target)
    assert _equal(source, target)


def test_pickle_format_when_safetensors_is_off(tmp_path) -> None:
    source, target = _fresh(0), _fresh(1)
    save_weights(source.state_dict(), str(tmp_path), safe=False)
    assert (tmp_path / WEIGHTS_NAME).exists()
    load_weights(str(tmp_path), target)
    assert _equal(source, target)
    assert target.head.weight is target.embed.weight


def test_a_pickled_file_holds_every_name_as_torch_save_would(tmp_path) -> None:
    source, plain = _fresh(0), _fresh(1)
    save_weights(source.state_dict(), str(tmp_path), safe=False)
    stored = torch.load(tmp_path / WEIGHTS_NAME, weights_only=True)
    assert sorted(stored) == sorted(source.state_dict())  # the tied alias too
    assert stored["head.weight"].data_ptr() == stored["embed.weight"].data_ptr()  # one copy
    plain.load_state_dict(stored)  # strict, as a plain torch user loads it
    assert _equal(source, plain)


def test_pickled_shards_index_every_name(tmp_path) -> None:
    source, target = _fresh(0), _fresh(1)
    save_weights(source.state_dict(), str(tmp_path), safe=False, max_shard_size="300B")
    with open(tmp_path / "pytorch_model.bin.index.json", encoding="utf-8") as handle:
        index = json.load(handle)
    assert sorted(index["weight_map"]) == sorted(source.state_dict())
    load_weights(str(tmp_path), target)
    assert _equal(source, target)


def test_overlapping_views_are_written_apart(tmp_path) -> None:
    base = torch.arange(10.0)
    save_weights({"a": base[:6], "b": base[4:]}, str(tmp_path))
    stored = read_weights(str(tmp_path))
    assert torch.equal(stored["a"], base[:6]) and torch.equal(stored["b"], base[4:])


def test_a_different_architecture_is_refused_with_the_names(tmp_path) -> None:
    save_weights(nn.Linear(3, 3).state_dict(), str(tmp_path))
    with pytest.raises(ValueError, match="do not fit Tied: missing"):
        load_weights(str(tmp_path), Tied())


def test_a_folder_without_weights_is_not_a_checkpoint(tmp_path) -> None:
    with pytest.raises(NotACheckpointError, match="holds no model weights"):
        read_weights(str(tmp_path))


@pytest.mark.parametrize(
    ("text", "expected"), [(100, 100), ("5GB", 5 * 10**9), ("2MiB", 2 * 2**20), ("1.5KB", 1500)]
)
def test_parse_size(text, expected) -> None:
    assert parse_size(text) == expected


def test_parse_size_names_the_units() -> None:
    with pytest.raises(ValueError, match="units: B, GB"):
        parse_size("5 parsecs")
