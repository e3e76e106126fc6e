"""The set_* helpers: the reference's doc examples, verbatim, and what each one sets."""

from __future__ import annotations

import ast
import json
import math

import pytest

from trainer_args import (
    HfArgumentParser,
    HubStrategy,
    IntervalStrategy,
    OptimizerNames,
    SaveStrategy,
    SchedulerType,
    TrainingArguments,
)

# The `>>>` lines and expected output of each set_* example in the reference, verbatim.
DOC_EXAMPLES: dict[str, str] = {
    "set_dataloader": """
>>> from transformers import TrainingArguments

>>> args = TrainingArguments("working_dir")
>>> args = args.set_dataloader(train_batch_size=16, eval_batch_size=64)
>>> args.per_device_train_batch_size
16
""",
    "set_evaluate": """
>>> from transformers import TrainingArguments

>>> args = TrainingArguments("working_dir")
>>> args = args.set_evaluate(strategy="steps", steps=100)
>>> args.eval_steps
100
""",
    "set_logging": """
>>> from transformers import TrainingArguments

>>> args = TrainingArguments("working_dir")
>>> args = args.set_logging(strategy="steps", steps=100)
>>> args.logging_steps
100
""",
    "set_lr_scheduler": """
>>> from transformers import TrainingArguments

>>> args = TrainingArguments("working_dir")
>>> args = args.set_lr_scheduler(name="cosine", warmup_ratio=0.05)
>>> args.warmup_ratio
0.05
""",
    "set_optimizer": """
>>> from transformers import TrainingArguments

>>> args = TrainingArguments("working_dir")
>>> args = args.set_optimizer(name="adamw_torch", beta1=0.8)
>>> args.optim
'adamw_torch'
""",
    "set_push_to_hub": """
>>> from transformers import TrainingArguments

>>> args = TrainingArguments("working_dir")
>>> args = args.set_push_to_hub("me/awesome-model")
>>> args.hub_model_id
'me/awesome-model'
""",
    "set_save": """
>>> from transformers import TrainingArguments

>>> args = TrainingArguments("working_dir")
>>> args = args.set_save(strategy="steps", steps=100)
>>> args.save_steps
100
""",
    "set_testing": """
>>> from transformers import TrainingArguments

>>> args = TrainingArguments("working_dir")
>>> args = args.set_testing(batch_size=32)
>>> args.per_device_eval_batch_size
32
""",
    "set_training": """
>>> from transformers import TrainingArguments

>>> args = TrainingArguments("working_dir")
>>> args = args.set_training(learning_rate=1e-4, batch_size=32)
>>> args.learning_rate
1e-4
""",
}


def _run_example(text: str) -> tuple[object, str]:
    """Execute the example's statements and return (last expression's value, expected)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    expected = lines[-1]
    source = [line[4:] for line in lines[:-1]]
    namespace: dict[str, object] = {}
    for statement in source[:-1]:
        exec(statement.replace("from transformers", "from trainer_args"), namespace)
    return eval(source[-1], namespace), expected


@pytest.mark.parametrize("method", list(DOC_EXAMPLES))
def test_reference_doc_example(method: str) -> None:
    value, expected = _run_example(DOC_EXAMPLES[method])
    assert value == ast.literal_eval(expected)
    assert type(value) is type(ast.literal_eval(expected)) or isinstance(value, str)


@pytest.mark.parametrize("method", [m for m in DOC_EXAMPLES if m != "set_training"])
def test_reference_doc_example_prints_exactly(method: str) -> None:
    """The interactive output is the same text (1e-4 prints as 0.0001 in any Python)."""
    value, expected = _run_example(DOC_EXAMPLES[method])
    assert repr(value) == expected


def test_every_setter_returns_self_and_chains() -> None:
    args = TrainingArguments("out")
    chained = (
        args.set_training(learning_rate=1e-3)
        .set_evaluate("steps", steps=10)
        .set_testing()
        .set_save("steps", steps=20)
        .set_logging("steps", steps=5)
        .set_push_to_hub("me/model")
        .set_optimizer("sgd")
        .set_lr_scheduler("constant")
        .set_dataloader(num_workers=1)
    )
    assert chained is args


def test_set_training_sets_do_train_and_every_value() -> None:
    args = TrainingArguments("out").set_training(
        learning_rate=1e-3,
        batch_size=4,
        weight_decay=0.1,
        num_epochs=2,
        max_steps=50,
        gradient_accumulation_steps=2,
        seed=7,
        gradient_checkpointing=True,
    )
    assert args.do_train
    assert (args.learning_rate, args.per_device_train_batch_size, args.weight_decay) == (
        1e-3,
        4,
        0.1,
    )
    assert (args.num_train_epochs, args.max_steps, args.gradient_accumulation_steps) == (2, 50, 2)
    assert args.seed == 7 and args.gradient_checkpointing


def test_set_evaluate_keeps_both_strategy_spellings_and_do_eval() -> None:
    args = TrainingArguments("out").set_evaluate(
        "epoch", batch_size=16, accumulation_steps=3, delay=1, loss_only=True, jit_mode=True
    )
    assert args.eval_strategy is IntervalStrategy.EPOCH
    assert args.evaluation_strategy is IntervalStrategy.EPOCH
    assert args.do_eval
    assert (args.per_device_eval_batch_size, args.eval_accumulation_steps, args.eval_delay) == (
        16,
        3,
        1,
    )
    assert args.prediction_loss_only and args.jit_mode_eval
    assert not args.set_evaluate("no").do_eval


def test_set_testing_sets_do_predict() -> None:
    args = TrainingArguments("out").set_testing(batch_size=4, loss_only=True, jit_mode=True)
    assert args.do_predict and args.prediction_loss_only and args.jit_mode_eval
    assert args.per_device_eval_batch_size == 4


def test_set_save_values_and_best_strategy() -> None:
    args = TrainingArguments("out").set_save("epoch", total_limit=2, on_each_node=True)
    assert args.save_strategy is SaveStrategy.EPOCH
    assert (args.save_total_limit, args.save_on_each_node) == (2, True)
    best = TrainingArguments("out").set_save("best")
    assert best.save_strategy is SaveStrategy.BEST and best.metric_for_best_model == "loss"


def test_set_logging_values() -> None:
    args = TrainingArguments("out").set_logging(
        "epoch",
        report_to="tensorboard",
        level="info",
        first_step=True,
        nan_inf_filter=True,
        on_each_node=True,
        replica_level="error",
    )
    assert args.logging_strategy is IntervalStrategy.EPOCH
    assert args.report_to == ["tensorboard"]
    assert (args.log_level, args.log_level_replica) == ("info", "error")
    assert args.logging_first_step and args.logging_nan_inf_filter and args.log_on_each_node
    assert TrainingArguments("out", report_to="wandb").set_logging().report_to == []


def test_set_push_to_hub_values() -> None:
    args = TrainingArguments("out").set_push_to_hub(
        "me/model", strategy="checkpoint", token="hf_secret", private_repo=True, always_push=True
    )
    assert args.push_to_hub and args.hub_model_id == "me/model"
    assert args.hub_strategy is HubStrategy.CHECKPOINT
    assert args.hub_token == "hf_secret" and args.hub_private_repo and args.hub_always_push


def test_set_push_to_hub_takes_transformers5s_revision_and_private_default() -> None:
    """transformers 5 adds ``revision`` (last, so v4.34's positional calls keep their
    meaning) and defaults ``private_repo`` to None: the organisation's default."""
    args = TrainingArguments("out").set_push_to_hub("me/model", revision="dev")
    assert (args.hub_revision, args.hub_private_repo) == ("dev", None)
    positional = TrainingArguments("out").set_push_to_hub("me/m", "end", "tok", False, True)
    assert (positional.hub_private_repo, positional.hub_always_push) == (False, True)
    assert positional.hub_revision is None
    assert TrainingArguments(**args.to_dict()).hub_private_repo is None


def test_set_optimizer_values() -> None:
    args = TrainingArguments("out").set_optimizer(
        "adafactor",
        learning_rate=1e-3,
        weight_decay=0.01,
        beta1=0.8,
        beta2=0.99,
        epsilon=1e-6,
        args="scale_parameter=False",
    )
    assert args.optim is OptimizerNames.ADAFACTOR
    assert (args.learning_rate, args.weight_decay) == (1e-3, 0.01)
    assert (args.adam_beta1, args.adam_beta2, args.adam_epsilon) == (0.8, 0.99, 1e-6)
    assert args.optim_args == "scale_parameter=False"


def test_set_lr_scheduler_values() -> None:
    args = TrainingArguments("out").set_lr_scheduler(
        "cosine_with_restarts", num_epochs=5, max_steps=100, warmup_steps=10
    )
    assert args.lr_scheduler_type is SchedulerType.COSINE_WITH_RESTARTS
    assert (args.num_train_epochs, args.max_steps, args.warmup_steps) == (5, 100, 10)


def test_set_dataloader_values() -> None:
    args = TrainingArguments("out").set_dataloader(
        drop_last=True,
        num_workers=2,
        pin_memory=False,
        auto_find_batch_size=True,
        ignore_data_skip=True,
        sampler_seed=3,
    )
    assert args.dataloader_drop_last and args.dataloader_num_workers == 2
    assert not args.dataloader_pin_memory and args.auto_find_batch_size
    assert args.ignore_data_skip and args.data_seed == 3


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda a: a.set_training(batch_size=0), "per_device_train_batch_size"),
        (lambda a: a.set_training(learning_rate=-1.0), "learning_rate"),
        (lambda a: a.set_evaluate("sometimes"), "strategy"),
        (lambda a: a.set_evaluate("steps", steps=0), "steps"),
        (lambda a: a.set_evaluate("steps", steps=2.5), "steps"),
        (lambda a: a.set_save("steps", steps=0), "steps"),
        (lambda a: a.set_save(total_limit=1.5), "save_total_limit"),
        (lambda a: a.set_logging(level="loud"), "log_level"),
        (lambda a: a.set_push_to_hub("me/m", strategy="never"), "strategy"),
        (lambda a: a.set_optimizer("adamw_magic"), "name"),
        (lambda a: a.set_optimizer(beta1=1.5), "adam_beta1"),
        (lambda a: a.set_lr_scheduler("zigzag"), "name"),
        (lambda a: a.set_lr_scheduler(warmup_ratio=2.0), "warmup_ratio"),
        (lambda a: a.set_dataloader(num_workers=-1), "dataloader_num_workers"),
    ],
)
def test_setters_reject_bad_values_naming_the_argument(call: object, argument: str) -> None:
    with pytest.raises((ValueError, TypeError), match=argument):
        call(TrainingArguments("out"))  # type: ignore[operator]  # the lambdas above


def test_get_warmup_steps() -> None:
    assert TrainingArguments("out", warmup_steps=7, warmup_ratio=0.5).get_warmup_steps(100) == 7
    assert TrainingArguments("out", warmup_ratio=0.1).get_warmup_steps(95) == math.ceil(9.5)
    assert TrainingArguments("out").get_warmup_steps(100) == 0


def test_a_warmup_steps_below_one_is_a_share_of_the_run(tmp_path) -> None:
    """transformers 5 dropped warmup_ratio: its users write the share as warmup_steps,
    and read it back from there (field, to_dict, training_args.json) as they wrote it."""
    args = TrainingArguments(output_dir=str(tmp_path), warmup_steps=0.25)
    assert (args.warmup_steps, args.warmup_ratio, args.get_warmup_steps(10)) == (0.25, 0.0, 3)
    assert args.to_dict()["warmup_steps"] == 0.25
    assert json.loads(args.to_json_string())["warmup_steps"] == 0.25
    assert TrainingArguments(**args.to_dict()) == args
    assert TrainingArguments(output_dir=str(tmp_path), warmup_steps=4.0).warmup_steps == 4
    args.set_lr_scheduler(name="cosine", warmup_steps=0.05, max_steps=100)
    assert (args.warmup_steps, args.get_warmup_steps(100)) == (0.05, 5)
    both = TrainingArguments(output_dir=str(tmp_path), warmup_steps=0.1, warmup_ratio=0.1)
    assert both.get_warmup_steps(95) == 10
    with pytest.raises(ValueError, match=r"warmup_ratio=0\.1 contradict"):
        TrainingArguments(output_dir=str(tmp_path), warmup_steps=0.2, warmup_ratio=0.1)
    with pytest.raises(TypeError, match=r"warmup_steps=2\.5"):
        TrainingArguments(output_dir=str(tmp_path), warmup_steps=2.5)
    (parsed,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--warmup_steps", "0.1"]
    )
    assert (parsed.warmup_steps, parsed.warmup_ratio) == (0.1, 0.0)


def test_a_v434_warmup_ratio_still_counts(tmp_path) -> None:
    """v4.34's warmup_ratio, given alone or in a set_lr_scheduler call, and a ratio with a
    step count (the count wins), read as before."""
    args = TrainingArguments(output_dir=str(tmp_path), warmup_ratio=0.2)
    assert (args.warmup_steps, args.warmup_ratio, args.get_warmup_steps(10)) == (0, 0.2, 2)
    assert args.set_lr_scheduler(warmup_ratio=0.3).get_warmup_steps(10) == 3
    with pytest.raises(ValueError, match=r"warmup_ratio=0\.3 contradict"):
        args.set_lr_scheduler(warmup_ratio=0.3, warmup_steps=0.5)
