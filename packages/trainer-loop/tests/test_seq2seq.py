"""Seq2SeqTrainer with a toy model that has a ``generate`` method (no transformers needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import Seq2SeqTrainingArguments, TrainingArguments
from trainer_loop import Seq2SeqTrainer, Trainer
from trainer_loop._seq2seq import pad_to_length

PAD = 0


class Pairs(Dataset):
    """Source ``[k, k+1]``, target ``[k+1, k+2, k+3]``."""

    def __init__(self, size: int = 6) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = i + 1
        return {
            "input_ids": torch.tensor([k, k + 1]),
            "labels": torch.tensor([k + 1, k + 2, k + 3]),
        }


class Counter(nn.Module):
    """``generate`` continues each row by counting up from its last token.

    It records the keyword arguments it receives; ``forward`` returns a loss of
    ``scale`` and logits so that the non-generating path works too.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.calls: list[dict] = []

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        logits = input_ids.float() * self.scale
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = self.scale * 1.0
        return out

    def generate(self, input_ids: torch.Tensor, max_length: int = 20, num_beams: int = 1, **kw):
        self.calls.append({"max_length": max_length, "num_beams": num_beams, **kw})
        steps = kw.get("max_new_tokens", max_length - input_ids.shape[1])
        start = input_ids[:, -1:]
        # Longer rows stop earlier: batches generate different widths.
        steps = max(1, min(steps, 5 - input_ids.shape[0]))
        return start + torch.arange(1, steps + 1)


def _args(tmp_path, **overrides) -> Seq2SeqTrainingArguments:
    defaults = dict(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=2,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        predict_with_generate=True,
    )
    defaults.update(overrides)
    return Seq2SeqTrainingArguments(**defaults)


def _counter(pad_token_id: int | None = PAD) -> Counter:
    model = Counter()
    if pad_token_id is not None:
        model.config = type("Config", (), {"pad_token_id": pad_token_id})()
    return model


def _first_token(prediction) -> dict[str, float]:
    generated, _labels = prediction
    return {"first": float(generated[:, 0].mean())}


def test_predictions_are_generated_tokens_padded_to_max_length(tmp_path) -> None:
    model = _counter()
    trainer = Seq2SeqTrainer(model=model, args=_args(tmp_path, generation_max_length=6))
    output = trainer.predict(Pairs(4))
    assert output.predictions.shape == (4, 6)
    assert output.predictions[0].tolist() == [3, 4, 5, 0, 0, 0]  # 3 steps, then the pad id
    assert output.label_ids.shape == (4, 6)
    assert output.label_ids[0].tolist() == [2, 3, 4, 0, 0, 0]
    assert output.metrics["test_loss"] == pytest.approx(0.5)
    assert model.calls[0] == {"max_length": 6, "num_beams": 1}


def test_generation_keywords_override_the_arguments(tmp_path) -> None:
    model = _counter()
    args = _args(tmp_path, generation_max_length=6, generation_num_beams=3)
    trainer = Seq2SeqTrainer(model=model, args=args, compute_metrics=_first_token)
    assert trainer.evaluate(Pairs(2))["eval_first"] == pytest.approx(3.5)
    assert model.calls[-1] == {"max_length": 6, "num_beams": 3}
    trainer.evaluate(Pairs(2), num_beams=2, max_length=4, do_sample=False)
    assert model.calls[-1] == {"max_length": 4, "num_beams": 2, "do_sample": False}
    output = trainer.predict(Pairs(2), max_new_tokens=2)
    assert model.calls[-1] == {"max_length": 20, "num_beams": 3, "max_new_tokens": 2}
    assert output.predictions.shape == (2, 3)  # max_new_tokens + 1, as for a start token


def test_padding_to_a_length_needs_a_pad_token_id(tmp_path) -> None:
    trainer = Seq2SeqTrainer(model=_counter(pad_token_id=None), args=_args(tmp_path))
    with pytest.raises(ValueError, match="no pad_token_id is set"):
        trainer.predict(Pairs(4), max_length=9)
    trainer.model.config = type("Config", (), {"eos_token_id": [7, 8]})()
    assert trainer.predict(Pairs(1), max_length=4).predictions.tolist() == [[3, 4, 7, 7]]


class _NoLength(Seq2SeqTrainer):
    def _target_length(self, kwargs):  # leave generated widths as they are
        return None


def test_batches_generating_different_widths_are_padded_with_the_pad_token(tmp_path) -> None:
    trainer = _NoLength(model=_counter(), args=_args(tmp_path, per_device_eval_batch_size=3))
    output = trainer.predict(Pairs(4), max_new_tokens=9)
    # First batch: 3 rows generate 2 tokens; second: 1 row generates 4 tokens.
    assert output.predictions.shape == (4, 4)
    # Token ids, not -100, so that tokenizer.batch_decode takes them as they are.
    assert output.predictions[0].tolist() == [3, 4, PAD, PAD]
    assert output.predictions[3].tolist() == [6, 7, 8, 9]


def test_without_a_pad_or_eos_id_generated_widths_are_padded_with_minus_100(tmp_path) -> None:
    args = _args(tmp_path, per_device_eval_batch_size=3)
    trainer = _NoLength(model=_counter(pad_token_id=None), args=args)
    output = trainer.predict(Pairs(4), max_new_tokens=9)
    assert output.predictions[0].tolist() == [3, 4, -100, -100]


def test_logits_are_padded_with_minus_100_without_predict_with_generate(tmp_path) -> None:
    class Widening(Counter):
        def forward(self, input_ids, labels=None):  # each batch's logits one wider
            out = super().forward(input_ids, labels)
            out["logits"] = out["logits"].repeat(1, 3 - input_ids.shape[0])
            return out

    model = Widening()
    model.config = type("Config", (), {"pad_token_id": PAD})()
    args = _args(tmp_path, per_device_eval_batch_size=2, predict_with_generate=False)
    output = Seq2SeqTrainer(model=model, args=args).predict(Pairs(3))
    assert output.predictions.shape == (3, 4)
    assert output.predictions[0, 2:].tolist() == [-100, -100]


def test_without_predict_with_generate_the_trainer_returns_logits(tmp_path) -> None:
    model = Counter()
    trainer = Seq2SeqTrainer(model=model, args=_args(tmp_path, predict_with_generate=False))
    output = trainer.predict(Pairs(3))
    np.testing.assert_allclose(output.predictions, [[0.5, 1.0], [1.0, 1.5], [1.5, 2.0]])
    assert model.calls == []


def test_plain_training_arguments_mean_no_generation(tmp_path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = Seq2SeqTrainer(model=Counter(), args=args)
    assert isinstance(trainer, Trainer)
    assert trainer.predict(Pairs(2)).predictions.shape == (2, 2)


def test_a_model_without_generate_is_refused_with_an_explanation(tmp_path) -> None:
    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor(1.0))

        def forward(self, input_ids, labels=None):
            return {"loss": self.w * 1.0, "logits": input_ids * self.w}

    trainer = Seq2SeqTrainer(model=Plain(), args=_args(tmp_path))
    with pytest.raises(TypeError, match=r"no generate\(\) method"):
        trainer.predict(Pairs(2))


def test_a_generation_config_dict_is_used_as_default_generate_keywords(tmp_path) -> None:
    model = _counter()
    args = _args(tmp_path, generation_config={"max_length": 5, "temperature": 0.5})
    trainer = Seq2SeqTrainer(model=model, args=args)
    trainer.predict(Pairs(2), max_length=4)
    assert model.calls[-1] == {"max_length": 4, "num_beams": 1, "temperature": 0.5}


def test_prediction_loss_only_skips_generation(tmp_path) -> None:
    model = Counter()
    trainer = Seq2SeqTrainer(model=model, args=_args(tmp_path, prediction_loss_only=True))
    output = trainer.predict(Pairs(2))
    assert output.predictions is None and model.calls == []


def test_pad_to_length_pads_the_last_dimension_only_when_shorter() -> None:
    assert pad_to_length(torch.tensor([[1, 2]]), 4, 9).tolist() == [[1, 2, 9, 9]]
    same = torch.tensor([[1, 2, 3]])
    assert pad_to_length(same, 2, 9) is same


# ------------------------------------------------------------------- synced_gpus
def _sharding_runtime(shards: bool):
    from trainer_dist import SingleProcessRuntime

    class Sharding(SingleProcessRuntime):
        """One process that claims to shard its weights, as FSDP and ZeRO-3 do."""

        @property
        def shards_parameters(self) -> bool:
            return shards

    return Sharding(device="cpu")


def test_generation_is_synced_across_processes_when_the_weights_are_sharded(tmp_path) -> None:
    model = _counter()
    args = _args(tmp_path, generation_max_length=6)
    trainer = Seq2SeqTrainer(model=model, args=args, runtime=_sharding_runtime(True))
    trainer.predict(Pairs(4))
    assert [call.get("synced_gpus") for call in model.calls] == [True, True]
    model.calls.clear()
    trainer.predict(Pairs(2), synced_gpus=False)  # the caller's choice is kept
    assert model.calls[0]["synced_gpus"] is False

    plain = _counter()
    Seq2SeqTrainer(model=plain, args=args, runtime=_sharding_runtime(False)).predict(Pairs(2))
    assert "synced_gpus" not in plain.calls[0]


def test_a_generate_that_cannot_take_synced_gpus_is_not_given_it(tmp_path) -> None:
    class Strict(Counter):
        def generate(self, input_ids: torch.Tensor, max_length: int = 20, num_beams: int = 1):
            return super().generate(input_ids, max_length=max_length, num_beams=num_beams)

    model = Strict()
    model.config = type("Config", (), {"pad_token_id": PAD})()
    args = _args(tmp_path, generation_max_length=6)
    trainer = Seq2SeqTrainer(model=model, args=args, runtime=_sharding_runtime(True))
    assert trainer.predict(Pairs(2)).predictions.shape == (2, 6)
    assert "synced_gpus" not in model.calls[0]


def test_empty_gen_kwargs_set_by_a_subclass_mean_the_models_defaults(tmp_path) -> None:
    """transformers' QA example's predict() sets ``self._gen_kwargs = {}`` and runs the
    loop itself: generation then takes the model's defaults, not the arguments'."""
    model = _counter()
    args = _args(tmp_path, generation_max_length=6, generation_num_beams=3)
    trainer = Seq2SeqTrainer(model=model, args=args)
    batch = {"input_ids": torch.tensor([[1, 2]]), "labels": torch.tensor([[2, 3, 4]])}
    trainer.prediction_step(model, batch, prediction_loss_only=False)  # no evaluate() yet
    assert model.calls[-1] == {"max_length": 6, "num_beams": 3}
    trainer._gen_kwargs = {}
    loader = trainer.get_test_dataloader(Pairs(2))
    trainer.evaluation_loop(loader, description="Prediction", metric_key_prefix="test")
    assert model.calls[-1] == {"max_length": 20, "num_beams": 1}
