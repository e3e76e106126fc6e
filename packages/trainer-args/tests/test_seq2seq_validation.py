"""``Seq2SeqTrainingArguments``' own rules: generation lengths and beams, and a
``generation_config`` path that does not exist (refused here, not by a Hub lookup later)."""

from __future__ import annotations

import pytest

from trainer_args import Seq2SeqTrainingArguments


@pytest.mark.parametrize(
    "path", ["/data/run/generation_config.json", "./gen", "~/no-such-folder/x", "gen.json"]
)
def test_a_generation_config_path_that_does_not_exist_is_refused(tmp_path, path) -> None:
    with pytest.raises(ValueError, match=r"generation_config=.*existing generation_config\.json"):
        Seq2SeqTrainingArguments(str(tmp_path), generation_config=path)


def test_existing_paths_and_model_ids_are_kept(tmp_path) -> None:
    config = tmp_path / "generation_config.json"
    config.write_text("{}")
    assert Seq2SeqTrainingArguments(str(tmp_path), generation_config=config).generation_config == (
        str(config)
    )
    for model_id in ("t5-small", "google-t5/t5-small"):
        args = Seq2SeqTrainingArguments(str(tmp_path), generation_config=model_id)
        assert args.generation_config == model_id


@pytest.mark.parametrize(
    ("name", "value"), [("generation_max_length", 0), ("generation_num_beams", 0)]
)
def test_generation_lengths_and_beams_are_positive(tmp_path, name, value) -> None:
    with pytest.raises(ValueError, match=name):
        Seq2SeqTrainingArguments(str(tmp_path), **{name: value})
