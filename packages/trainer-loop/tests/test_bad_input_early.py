"""Mistakes that used to show late (NaN weights, a KeyError at the first evaluation) or
not at all are refused before the first step, saying what to change: float16 weights
with an Adam epsilon float16 cannot hold, a ``processing_class`` that is a name or a
class, a best-model metric that names none of several evaluation datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_core import EarlyStoppingCallback, TrainerCallback
from trainer_loop import Trainer


class _Net(nn.Module):
    """The second input feature is always 0, so its weight's gradient is exactly 0: the
    case where Adam's second moment is 0 and only the epsilon keeps the update finite."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        out = self.linear(x)[:, 0]
        if labels is None:
            return {"logits": out}
        return {"loss": ((out.float() - labels.float()) ** 2).mean(), "logits": out}


class _Steps(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def _data(count: int = 8, dtype: torch.dtype = torch.float32) -> list[dict[str, torch.Tensor]]:
    return [
        {
            "x": torch.tensor([0.1 * i, 0.0], dtype=dtype),
            "labels": torch.tensor(0.1 * i, dtype=dtype),
        }
        for i in range(count)
    ]


def _args(tmp_path: Path, **extra: Any) -> TrainingArguments:
    settings: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        max_steps=3,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    settings.update(extra)
    return TrainingArguments(**settings)


def _finite(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


# ------------------------------------------------------- float16 weights and Adam's epsilon


def test_float16_weights_with_the_default_adam_epsilon_are_refused_before_a_step(
    tmp_path,
) -> None:
    steps = _Steps()
    model = _Net().half()
    trainer = Trainer(
        model=model, args=_args(tmp_path), train_dataset=_data(dtype=torch.float16),
        callbacks=[steps],
    )  # fmt: skip
    with pytest.raises(
        ValueError,
        match=r"float16 weights, and optim='adamw_torch'.*adam_epsilon=1e-08.*float32.*fp16=True.*"
        r"adam_epsilon=1e-4.*adamw_torch_fused",
    ):
        trainer.train()
    assert steps.steps == 0 and trainer.optimizer is None
    assert _finite(model)


def test_an_epsilon_set_in_optim_args_is_the_one_checked(tmp_path) -> None:
    trainer = Trainer(
        model=_Net().half(), args=_args(tmp_path, adam_epsilon=1e-4, optim_args="eps=1e-9"),
        train_dataset=_data(dtype=torch.float16),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"with optim_args eps=1e-09, which float16 rounds to 0"):
        trainer.train()


@pytest.mark.parametrize(
    "fix",
    [
        {"adam_epsilon": 1e-4},
        {"optim": "adamw_torch_fused"},
        {"optim_args": "eps=1e-4"},
        {"optim": "sgd"},
    ],
)
def test_each_suggested_fix_trains_float16_weights_to_finite_values(tmp_path, fix) -> None:
    model = _Net().half()
    trainer = Trainer(
        model=model, args=_args(tmp_path, **fix), train_dataset=_data(dtype=torch.float16)
    )
    trainer.train()
    assert trainer.state.global_step == 3 and _finite(model)


def test_bfloat16_weights_with_the_default_epsilon_train(tmp_path) -> None:
    model = _Net().to(torch.bfloat16)
    trainer = Trainer(model=model, args=_args(tmp_path), train_dataset=_data(dtype=torch.bfloat16))
    trainer.train()
    assert trainer.state.global_step == 3 and _finite(model)


def test_an_optimizer_the_user_built_is_not_second_guessed(tmp_path) -> None:
    model = _Net().half()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-4)
    trainer = Trainer(
        model=model, args=_args(tmp_path), train_dataset=_data(dtype=torch.float16),
        optimizers=(optimizer, None),
    )  # fmt: skip
    trainer.train()
    assert trainer.optimizer is optimizer and _finite(model)


def test_frozen_float16_weights_are_not_the_optimizer_s_concern(tmp_path) -> None:
    model = _Net()
    model.frozen = nn.Linear(2, 2).half().requires_grad_(False)
    trainer = Trainer(model=model, args=_args(tmp_path), train_dataset=_data())
    trainer.train()
    assert trainer.state.global_step == 3


# ----------------------------------------------------------------------- processing_class


class _MyTokenizer:
    model_input_names = ("input_ids",)

    @classmethod
    def from_pretrained(cls, name: str) -> _MyTokenizer:
        return cls()


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("processing_class", "bert-base-uncased",
         r"processing_class is the name or path 'bert-base-uncased'.*"
         r"AutoTokenizer\.from_pretrained\('bert-base-uncased'\)"),
        ("tokenizer", Path("my_tokenizer"),
         r"tokenizer is the name or path 'my_tokenizer'.*from_pretrained"),
        ("processing_class", b"bert", r"processing_class is bytes"),
        ("processing_class", 3, r"processing_class is int, not a tokenizer"),
        ("processing_class", 0.5, r"processing_class is float"),
        ("processing_class", True, r"processing_class is bool"),
        ("processing_class", _MyTokenizer,
         r"processing_class is the class _MyTokenizer, not an instance.*"
         r"_MyTokenizer\.from_pretrained\(name\)"),
    ],
)  # fmt: skip
def test_a_processing_class_that_is_no_instance_is_refused_at_construction(
    tmp_path, keyword: str, value: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        Trainer(model=_Net(), args=_args(tmp_path), **{keyword: value})


@pytest.mark.parametrize("value", [None, _MyTokenizer(), object()])
def test_any_processing_class_instance_is_accepted(tmp_path, value: Any) -> None:
    trainer = Trainer(model=_Net(), args=_args(tmp_path), processing_class=value)
    assert trainer.processing_class is value


def test_a_processing_class_name_assigned_later_is_refused_when_training_starts(
    tmp_path,
) -> None:
    trainer = Trainer(model=_Net(), args=_args(tmp_path), train_dataset=_data())
    trainer.processing_class = "gpt2"
    with pytest.raises(TypeError, match=r"processing_class is the name or path 'gpt2'"):
        trainer.train()
    assert trainer.state.global_step == 0


# ------------------------------------------------- best-model metric with several eval sets


def _best_args(tmp_path: Path, **extra: Any) -> TrainingArguments:
    settings: dict[str, Any] = dict(
        max_steps=4, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2,
        load_best_model_at_end=True,
    )  # fmt: skip
    return _args(tmp_path, **{**settings, **extra})


def _two_sets() -> dict[str, list[dict[str, torch.Tensor]]]:
    return {"a": _data(4), "b": _data(6)}


def test_best_model_with_several_eval_sets_needs_the_set_named_before_a_step(tmp_path) -> None:
    steps = _Steps()
    trainer = Trainer(
        model=_Net(), args=_best_args(tmp_path), train_dataset=_data(),
        eval_dataset=_two_sets(), callbacks=[steps],
    )  # fmt: skip
    with pytest.raises(
        ValueError,
        match=r"metric_for_best_model='loss'.*eval_a_loss, eval_b_loss.*"
        r"metric_for_best_model='a_loss' \(or 'eval_a_loss'\)",
    ):
        trainer.train()
    assert steps.steps == 0


@pytest.mark.parametrize(
    "extra",
    [
        {"load_best_model_at_end": False, "save_strategy": "best", "metric_for_best_model": "loss"},
        {"load_best_model_at_end": False, "metric_for_best_model": "eval_loss"},
    ],
)
def test_every_way_of_tracking_the_best_metric_is_checked(tmp_path, extra) -> None:
    trainer = Trainer(
        model=_Net(), args=_best_args(tmp_path, **extra), train_dataset=_data(),
        eval_dataset=_two_sets(),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"eval_dataset holds several datasets"):
        trainer.train()


def test_early_stopping_with_several_eval_sets_needs_the_set_named(tmp_path) -> None:
    trainer = Trainer(
        model=_Net(), args=_best_args(tmp_path), train_dataset=_data(),
        eval_dataset=_two_sets(), callbacks=[EarlyStoppingCallback(early_stopping_patience=2)],
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"metric_for_best_model='a_loss'"):
        trainer.train()


@pytest.mark.parametrize("metric", ["a_loss", "eval_b_loss"])
def test_a_metric_naming_one_eval_set_tracks_that_set(tmp_path, metric: str) -> None:
    trainer = Trainer(
        model=_Net(), args=_best_args(tmp_path, metric_for_best_model=metric),
        train_dataset=_data(), eval_dataset=_two_sets(),
    )  # fmt: skip
    trainer.train()
    key = metric if metric.startswith("eval_") else f"eval_{metric}"
    reported = [entry[key] for entry in trainer.state.log_history if key in entry]
    assert trainer.state.best_metric == min(reported)


def test_an_evaluate_override_may_report_the_plain_metric(tmp_path) -> None:
    class Averaging(Trainer):
        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            losses = [v for k, v in metrics.items() if k.endswith("_loss")]
            return {**metrics, "eval_loss": sum(losses) / len(losses)}

    trainer = Averaging(
        model=_Net(), args=_best_args(tmp_path), train_dataset=_data(), eval_dataset=_two_sets()
    )
    trainer.train()
    assert trainer.state.best_metric is not None


def test_one_label_name_assigned_after_construction_is_one_name(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    args.label_names = "labels"  # after construction: not normalised by the arguments
    trainer = Trainer(model=nn.Linear(2, 1), args=args)
    assert trainer.label_names == ["labels"]
