"""Fields and spellings of transformers 5 that users carry over to this package.

transformers 5's ``TrainingArguments`` has fields v4.34 does not (``use_liger_kernel``,
``train_sampling_strategy``, ``project``, ...), and writes some old fields differently
(``include_num_input_tokens_seen="no"``). They arrive here from scripts, command lines
and, above all, from ``transformers.TrainingArguments(...).to_dict()`` /
``training_args.json``, which hold every field. So every field exists here too, and:

- values the training loop honours (``enable_jit_checkpoint``, the data-loader worker
  options, ``lr_scheduler_type="greedy"``), or that only name things for a reporter
  (``project``, ``trackio_*``), are kept, as transformers keeps them;
- ``train_sampling_strategy="group_by_length"`` is ``group_by_length=True``, and the two
  stay in step; ``"sequential"`` trains in the dataset's order;
- a value that asks for a behaviour this package does not implement (Liger kernels,
  accelerate's ``ParallelismConfig``, a rebalanced training order) is refused with the
  way to get the behaviour instead: silently training another way than asked would be
  worse than stopping.
"""

from __future__ import annotations

from typing import Any

from trainer_args._field_types import FALSE_WORDS, TRUE_WORDS
from trainer_args._messages import conflict, invalid

TRAIN_SAMPLING_STRATEGIES: tuple[str, ...] = (
    "random",
    "sequential",
    "group_by_length",
    "batch_rebalance",
)
"""``train_sampling_strategy`` values transformers 5 knows (its help lists them)."""

SUPPORTED_SAMPLING_STRATEGIES: tuple[str, ...] = ("random", "sequential", "group_by_length")
"""The training orders the loop implements: a shuffle, the dataset's order, or batches of
similar lengths. ``batch_rebalance`` (variable-size batches balanced across processes)
is not one of them."""

MULTIPROCESSING_CONTEXTS: tuple[str, ...] = ("fork", "spawn", "forkserver")
"""``dataloader_multiprocessing_context`` values (the ``multiprocessing`` start methods)."""

TOKEN_COUNT_WORDS: dict[str, bool] = {"no": False, "all": True}
"""transformers 5's ``include_num_input_tokens_seen`` words for this package's bools."""


def normalize_token_count_mode(value: Any) -> bool | str:
    """``include_num_input_tokens_seen``: a bool, or ``"non_padding"``.

    transformers 5's ``"no"``/``"all"`` become ``False``/``True``, and so do bool words
    from a config file (``"false"``, ``"yes"``): no word may be stored as it is, since
    a non-empty string is true and the loop would count tokens the user switched off.
    ``"non_padding"`` is kept: the loop counts the attention mask's ones then.

    Raises:
        ValueError: any other value, naming the ones accepted.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word == "non_padding":
            return word
        if word in TOKEN_COUNT_WORDS:
            return TOKEN_COUNT_WORDS[word]
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
    raise invalid(
        "include_num_input_tokens_seen",
        value,
        "True / False (or true/false, yes/no as words), or transformers 5's 'all', 'no' "
        "or 'non_padding'",
        "'non_padding' counts only the tokens the attention mask keeps.",
    )


def _refuse(name: str, value: Any, why: str, fix: str) -> ValueError:
    return ValueError(f"{name}={value!r} is not supported: {why}. {fix}")


def _check_unsupported(args: Any) -> None:
    if args.use_liger_kernel:
        raise _refuse(
            "use_liger_kernel",
            args.use_liger_kernel,
            "trainer does not patch models with Liger kernels",
            "Apply them to the model yourself before passing it to the Trainer "
            "(liger_kernel.transformers.apply_liger_kernel_to_<model>()), and drop "
            "use_liger_kernel.",
        )
    if args.parallelism_config is not None:
        raise _refuse(
            "parallelism_config",
            args.parallelism_config,
            "trainer does not build tensor, context or sequence parallel runs",
            "Drop it; use fsdp or deepspeed for sharded data-parallel training.",
        )


def _resolve_sampling_strategy(args: Any) -> None:
    """Check ``train_sampling_strategy`` and keep it in step with ``group_by_length``."""
    strategy = args.train_sampling_strategy
    if strategy not in TRAIN_SAMPLING_STRATEGIES:
        allowed = ", ".join(repr(name) for name in TRAIN_SAMPLING_STRATEGIES)
        raise invalid("train_sampling_strategy", strategy, f"one of {allowed}")
    if strategy not in SUPPORTED_SAMPLING_STRATEGIES:
        raise _refuse(
            "train_sampling_strategy",
            strategy,
            "the training loop has no batch sampler that rebalances lengths across processes",
            "Use 'group_by_length' (batches of similar lengths), 'random' or 'sequential', or "
            "override Trainer._get_train_sampler.",
        )
    if args.group_by_length and strategy == "sequential":
        raise conflict(
            "group_by_length", True, "train_sampling_strategy", strategy,
            "Give one training order: train_sampling_strategy='group_by_length' or "
            "'sequential'.",
        )  # fmt: skip
    # "random" is the default and cannot be told from "not given": group_by_length wins.
    if args.group_by_length or strategy == "group_by_length":
        args.group_by_length = True
        args.train_sampling_strategy = "group_by_length"
    else:
        args.group_by_length = False


def _resolve_greedy_scheduler(args: Any) -> None:
    """``lr_scheduler_type="greedy"`` steps on an evaluation metric, as
    ``reduce_lr_on_plateau`` does: it needs evaluations, and defaults the metric to the
    loss (``greater_is_better`` follows from the name later), as in transformers 5."""
    if args.lr_scheduler_type != "greedy":
        return
    if args.eval_strategy == "no":
        raise conflict(
            "lr_scheduler_type", "greedy", "eval_strategy", "no",
            "That scheduler reacts to evaluation metrics; set eval_strategy='steps' or 'epoch'.",
        )  # fmt: skip
    if args.metric_for_best_model is None:
        args.metric_for_best_model = "loss"


def check_multiprocessing_context(context: Any) -> None:
    """``dataloader_multiprocessing_context`` must name a start method, or be None."""
    if context is not None and context not in MULTIPROCESSING_CONTEXTS:
        allowed = ", ".join(repr(name) for name in MULTIPROCESSING_CONTEXTS)
        raise invalid("dataloader_multiprocessing_context", context, f"one of {allowed} or None")


def resolve_transformers5_fields(args: Any) -> None:
    """Check the transformers 5 fields and translate their spellings (see module doc)."""
    args.include_num_input_tokens_seen = normalize_token_count_mode(
        args.include_num_input_tokens_seen
    )
    _check_unsupported(args)
    _resolve_sampling_strategy(args)
    _resolve_greedy_scheduler(args)
    check_multiprocessing_context(args.dataloader_multiprocessing_context)


def mirror_sampling_strategy(args: Any, name: str, value: Any) -> None:
    """After construction, assigning one of ``group_by_length`` / ``train_sampling_strategy``
    updates the other (so that the loop, which reads ``group_by_length``, sees it)."""
    if name == "group_by_length":
        object.__setattr__(args, "group_by_length", value)
        if value:
            strategy = "group_by_length"
        else:  # switching grouping off returns to the shuffle; another order stays
            current = args.train_sampling_strategy
            strategy = "random" if current == "group_by_length" else current
        object.__setattr__(args, "train_sampling_strategy", strategy)
        return
    if value not in SUPPORTED_SAMPLING_STRATEGIES:
        allowed = " or ".join(repr(name) for name in SUPPORTED_SAMPLING_STRATEGIES)
        raise invalid("train_sampling_strategy", value, allowed)
    object.__setattr__(args, "train_sampling_strategy", value)
    object.__setattr__(args, "group_by_length", value == "group_by_length")
