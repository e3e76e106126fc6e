"""Checks and small decisions the Trainer makes at construction, and the checks of the
datasets that ``train()`` makes before the first step.

Kept out of the Trainer facade so that it stays a readable list of the reference's
methods; each function here answers one question about the constructor's arguments or
the data about to be trained on.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from trainer_loop._collators import DataCollatorWithPadding, default_data_collator
from trainer_loop._columns import _forward_signature
from trainer_loop._dataloader_options import is_hf_dataset
from trainer_loop._inputs import accepts_argument

if TYPE_CHECKING:
    from trainer_args import TrainingArguments

PACKAGE_LOGGERS = (
    "trainer",
    "trainer_core",
    "trainer_args",
    "trainer_checkpoint",
    "trainer_dist",
    "trainer_loop",
    "trainer_reporting",
    "trainer_hpsearch",
)


class _StderrHandler(logging.StreamHandler):
    """Prints our packages' records to the current ``sys.stderr`` while the application
    has configured no logging of its own.

    The stream is looked up at each record (as Python's last-resort handler does), so a
    replaced ``sys.stderr`` is honoured. The handler stands aside when the root logger
    has handlers, or when the application gave the record's package logger one: the
    record then propagates to them, as it did before this handler existed, and is
    printed once.
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self) -> Any:  # type: ignore[override]  # read-only: always sys.stderr
        return sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        package = logging.getLogger(record.name.partition(".")[0])
        if any(handler is not self for handler in package.handlers):
            return
        super().emit(record)


_STDERR_HANDLER = _StderrHandler()


def apply_process_log_level(args: TrainingArguments) -> None:
    """Give our packages' loggers this process's level (main vs replica), as the
    reference does for its own logger; "passive" leaves them as the application set them.

    With a level chosen, our loggers also get one shared stderr handler (see
    ``_StderrHandler``: silent once the application configures logging), so that
    ``log_level="info"`` prints the loop's info lines, and transformers, if imported,
    gets the same verbosity (``log_level_replica="error"`` quiets its warnings too).
    """
    setting = args.log_level if args.should_log else args.log_level_replica
    level = args.get_process_log_level()
    # "passive": the application's choice stands. Made through transformers' verbosity
    # (example scripts call set_verbosity_info()), it reaches our loggers too, as the
    # loop's lines are transformers' own lines in the reference; it only ever makes them
    # more verbose, so that a root logger configured at INFO still shows our lines.
    if setting == "passive" and level >= logging.getLogger("trainer_loop").getEffectiveLevel():
        return
    for name in PACKAGE_LOGGERS:
        package_logger = logging.getLogger(name)
        package_logger.setLevel(level)
        if _STDERR_HANDLER not in package_logger.handlers:
            package_logger.addHandler(_STDERR_HANDLER)
    if setting != "passive":
        _set_transformers_verbosity(level)


def _set_transformers_verbosity(level: int) -> None:
    """Set transformers' own verbosity when the application already imported it (never
    import it here: a model that is not from transformers should not pay for it)."""
    if "transformers" not in sys.modules:
        return
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is None:
        hf_logging = importlib.import_module("transformers.utils.logging")
    hf_logging.set_verbosity(level)


def enable_activation_checkpointing(model: Any, kwargs: dict[str, Any] | None) -> None:
    """Turn on the model's activation (a.k.a. gradient) checkpointing for
    ``gradient_checkpointing=True``.

    transformers 5 renamed ``gradient_checkpointing_enable`` to
    ``activation_checkpointing_enable`` and warns (FutureWarning, on every process) when
    the old name is called, so the new name is preferred when the model has it; models
    that only define the old one (older transformers, custom modules) keep working.

    Args:
        model: the model as the user passed it (before any wrapping).
        kwargs: ``gradient_checkpointing_kwargs``, passed on when the method takes them.

    Raises:
        ValueError: the model has neither method.
    """
    keyword = "activation_checkpointing_kwargs"
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is None:
        keyword = "gradient_checkpointing_kwargs"
        enable = getattr(model, "gradient_checkpointing_enable", None)
    if enable is None:
        raise ValueError(missing_checkpointing_message(model))
    checkpoint_kwargs = dict(kwargs or {})
    # transformers 5's own choices (which layers, activations on the CPU) are arguments
    # of the method, not options of torch.utils.checkpoint: they leave the dict.
    options = {
        name: checkpoint_kwargs.pop(name) for name in _LAYER_OPTIONS if name in checkpoint_kwargs
    }
    refused = sorted(name for name in options if not accepts_argument(enable, name))
    if refused:
        raise ValueError(
            f"gradient_checkpointing_kwargs has {', '.join(map(repr, refused))}, but "
            f"{type(model).__name__}.{enable.__name__}() takes no such argument (transformers "
            "5 models do): leave it out of gradient_checkpointing_kwargs."
        )
    if kwargs is not None and accepts_argument(enable, keyword):
        options[keyword] = checkpoint_kwargs or None  # as the reference: {} is the default
    enable(**options)


def missing_checkpointing_message(model: Any) -> str:
    """The error for ``gradient_checkpointing=True`` with a model that cannot do it."""
    return (
        f"gradient_checkpointing=True, but {type(model).__name__} has no "
        "`gradient_checkpointing_enable()` (or `activation_checkpointing_enable()`) "
        "method: implement one (e.g. with torch.utils.checkpoint) or turn "
        "gradient_checkpointing off."
    )


_LAYER_OPTIONS = ("every_n_layers", "offload")
"""``gradient_checkpointing_kwargs`` keys that transformers 5 hands to
``activation_checkpointing_enable`` as arguments of their own."""


def apply_use_cache(model: Any, use_cache: bool) -> None:
    """Set ``model.config.use_cache`` to ``args.use_cache`` (False by default), as
    transformers 5 does for the model it trains.

    A key/value cache serves generation, not training: kept on, it costs memory at every
    step, and transformers' attention masks then ignore packed sequences' boundaries
    (``DataCollatorWithFlattening``), so packed batches would attend across examples.
    Models without a settable config (none, or a plain dict) are left alone.
    """
    config = getattr(model, "config", None)
    if config is None or isinstance(config, dict):
        return
    try:
        config.use_cache = use_cache
    except (AttributeError, TypeError):  # a read-only config object
        return


def pick_processing_class(tokenizer: Any, processing_class: Any) -> Any:
    """The one of ``tokenizer`` / ``processing_class`` given, checked to be an instance."""
    if tokenizer is not None and processing_class is not None and tokenizer is not processing_class:
        raise ValueError(
            "Pass either `tokenizer` or `processing_class` (the same thing), not both."
        )
    if processing_class is None:
        check_processing_class(tokenizer, "tokenizer")
        return tokenizer
    check_processing_class(processing_class, "processing_class")
    return processing_class


def check_processing_class(value: Any, name: str = "processing_class") -> None:
    """Refuse a name, a number or a class where a tokenizer or processor instance belongs.

    Any other object is accepted (a tokenizer, processor, feature extractor, image
    processor, or one of the user's own): the Trainer only saves it with the model and
    asks it to pad. A name or a class would be ignored until the first save or the
    default collator, which then fail without naming the argument.
    """
    if value is None:
        return
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        raise TypeError(
            f"{name} is the name or path {text!r}, not a tokenizer or processor: load it "
            f"first, e.g. {name}=AutoTokenizer.from_pretrained({text!r}) (AutoProcessor or "
            "AutoImageProcessor for other kinds of input)."
        )
    if isinstance(value, type):
        raise TypeError(
            f"{name} is the class {value.__name__}, not an instance: pass one, e.g. "
            f"{name}={value.__name__}.from_pretrained(name)."
        )
    if isinstance(value, (bytes, numbers.Number)):
        raise TypeError(
            f"{name} is {type(value).__name__}, not a tokenizer or processor: pass an "
            "instance (e.g. AutoTokenizer.from_pretrained(name)), or None."
        )


def check_optimizers(optimizers: tuple[Any, Any], model_init: Any) -> tuple[Any, Any]:
    if not isinstance(optimizers, (tuple, list)) or len(optimizers) != 2:
        raise ValueError(
            "`optimizers` must be a tuple (optimizer, lr_scheduler); pass (None, None) to let "
            f"the Trainer create them. Got {optimizers!r}."
        )
    optimizer, scheduler = optimizers
    if model_init is not None and (optimizer is not None or scheduler is not None):
        raise RuntimeError(
            "Passing `optimizers` together with `model_init` is not supported: the model is "
            "re-created for each train() call, so the optimizer would hold stale parameters. "
            "Subclass Trainer and override create_optimizer_and_scheduler instead."
        )
    return optimizer, scheduler


def parameter_count(function: Callable[..., Any]) -> int:

    return len(inspect.signature(function).parameters)


def check_batch_metrics_signature(args: Any, compute_metrics: Callable[..., Any] | None) -> None:
    """Refuse, before any work, a ``compute_metrics`` that batch-wise evaluation cannot call.

    With ``batch_eval_metrics=True`` the evaluation loop calls
    ``compute_metrics(eval_prediction, compute_result=...)`` after every batch, so a
    function without that parameter would fail only at the first evaluation, possibly
    hours into training; the reference refuses it in the constructor. A ``**kwargs``
    parameter takes the keyword and is accepted; a callable whose signature Python
    cannot read is left to the call.

    Raises:
        ValueError: ``compute_metrics`` cannot take ``compute_result``.
    """
    if not getattr(args, "batch_eval_metrics", False) or compute_metrics is None:
        return
    try:
        parameters = inspect.signature(compute_metrics).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.name == "compute_result" or p.kind is p.VAR_KEYWORD for p in parameters):
        return
    name = getattr(compute_metrics, "__name__", type(compute_metrics).__name__)
    raise ValueError(
        "batch_eval_metrics=True calls compute_metrics(eval_prediction, compute_result=...) "
        "after every evaluation batch (compute_result is True on the last one, when the "
        f"summary metrics must be returned), but {name}() has no `compute_result` "
        "parameter. Add `compute_result: bool = True` to its parameters, or set "
        "batch_eval_metrics=False."
    )


def check_eval_dataset(trainer: Any) -> None:
    """Refuse to start training that would evaluate with nothing to evaluate on.

    Checked when ``train()`` starts rather than in the constructor (where the reference
    checks), so that ``trainer.eval_dataset = ...`` after construction still works; it
    still comes before the first step instead of at the first evaluation. A trainer
    whose user code replaces ``evaluate`` or ``get_eval_dataloader`` may evaluate
    without an ``eval_dataset`` and is not refused.

    Raises:
        ValueError: ``eval_strategy`` or ``eval_on_start`` asks for evaluations and there
            is no dataset.
    """
    strategy = getattr(trainer.args, "eval_strategy", None)
    evaluates = strategy is not None and strategy != "no"
    on_start = bool(getattr(trainer.args, "eval_on_start", False))
    if not (evaluates or on_start) or trainer.eval_dataset is not None:
        return
    if user_defines(trainer, ("evaluate", "get_eval_dataloader")):
        return
    if not evaluates:
        raise ValueError(
            "eval_on_start=True evaluates before the first step, but the Trainer has no "
            "eval_dataset. Pass eval_dataset= to the Trainer (or assign "
            "trainer.eval_dataset before train()), or set eval_on_start=False."
        )
    raise ValueError(
        f"eval_strategy={str(getattr(strategy, 'value', strategy))!r} evaluates during "
        "training, but the Trainer has no eval_dataset. Pass eval_dataset= to the Trainer "
        "(or assign trainer.eval_dataset before train()), or set eval_strategy='no'."
    )


def user_defines(trainer: Any, names: tuple[str, ...]) -> bool:
    """Whether code outside this package (a subclass, or the instance) defines any of
    ``names`` (our own ``Seq2SeqTrainer.evaluate`` does not count)."""
    own = vars(trainer)
    for name in names:
        method = getattr(type(trainer), name, None)
        module = getattr(method, "__module__", None) or ""
        if name in own or module.partition(".")[0] != "trainer_loop":
            return True
    return False


def check_model_or_init(model: Any, model_init: Callable[..., Any] | None) -> None:
    """Refuse a Trainer with neither a model nor ``model_init``; warn when given both
    (``model_init`` replaces the model when ``train()`` starts)."""
    if model is None and model_init is None:
        raise RuntimeError(
            "`Trainer` requires either a `model` or a `model_init` argument, and both are "
            "None. Pass model=YourModel(...) (an instance), or model_init= a function "
            "returning a fresh model (called at each train(), e.g. for hyperparameter "
            "search)."
        )
    if model_init is not None and callable(model_init) and _required_arguments(model_init) > 1:
        raise RuntimeError(
            f"model_init takes {_required_arguments(model_init)} required arguments, but the "
            "Trainer calls it with none or with one (the hyperparameter-search trial). Give "
            "the other parameters defaults, or bind them with functools.partial."
        )
    if model is not None and model_init is not None:
        warnings.warn(
            "Trainer got both `model` and `model_init`: `model_init` will overwrite "
            "your model when `train()` is called.",
            FutureWarning,
            stacklevel=4,
        )


def _required_arguments(function: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin: nothing to check
        return 0
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in positional and p.default is inspect.Parameter.empty for p in parameters)


def spreads_over_devices(model: Any) -> bool:
    """Whether the model is already split over several devices (the reference's
    ``is_model_parallel``): then the Trainer must not move it to one device."""
    device_map = getattr(model, "hf_device_map", None) or {}
    naive = getattr(model, "is_parallelizable", False) and getattr(model, "model_parallel", False)
    return bool(naive) or len({str(d) for d in device_map.values()} - {"cpu", "disk"}) > 1


def evaluates_in_half_only(args: Any) -> bool:
    """Whether the run only evaluates, in fp16/bf16 (``*_full_eval``): the model is then
    cast before it is moved, so it is not moved at construction."""
    return bool((args.fp16_full_eval or args.bf16_full_eval) and not args.do_train)


def check_eval_dataset_kind(dataset: Any) -> None:
    """Refuse a split name or a path given as ``eval_dataset`` (or as one of a dict of
    them): it would be indexed like a dataset at the first evaluation, and fail there
    with ``string indices must be integers``."""
    named = dataset.items() if isinstance(dataset, Mapping) else [(None, dataset)]
    for name, value in named:
        if not isinstance(value, (str, bytes, os.PathLike)):
            continue
        where = "eval_dataset" if name is None else f"eval_dataset[{name!r}]"
        raise TypeError(
            f"{where} is the string {os.fsdecode(value)!r}, not a dataset: load and "
            "tokenize the split first and pass it, e.g. eval_dataset=dataset['validation']."
        )


# ------------------------------------------------------- the first training example
_DEFAULT_COLLATORS = (default_data_collator,)
_LABEL_RENAMES = ("label", "label_ids")  # the default collators put these under "labels"


def check_first_example(trainer: Any) -> None:
    """Read the first training example and refuse what the default collator would turn
    into a failed (or label-less) run.

    * text under an input the model's ``forward`` requires: the default collator leaves
      text out of the batch, so the first step would fail with ``forward() missing 1
      required positional argument``, naming neither the text nor the tokenizer;
    * ``label_names`` naming keys the batches will not have: every evaluation would then
      find no labels, report no ``eval_loss`` and never call ``compute_metrics``.

    Only datasets that can be read without side effects are (see ``_first_example``),
    and only with the default collators: a collator of the user's may tokenize text or
    build labels itself.
    """
    if not _uses_default_collator(trainer.data_collator) or trainer.model is None:
        return
    example = _first_example(trainer.train_dataset)
    if example is None:
        return
    if not user_defines(trainer, ("get_train_dataloader", "compute_loss", "training_step")):
        _check_text_inputs(example, trainer.model)
    if not user_defines(trainer, ("prediction_step", "evaluate", "evaluation_loop")):
        _check_label_names_present(example, trainer.args.label_names)


def _uses_default_collator(collator: Any) -> bool:
    return collator in _DEFAULT_COLLATORS or isinstance(collator, DataCollatorWithPadding)


def _first_example(dataset: Any) -> Mapping[str, Any] | None:
    """The first example, read only where reading has no side effect: from a list or a
    tuple, or from a ``datasets.Dataset`` without a custom transform (an Arrow read).
    Other datasets may count, cache or randomly augment what they read (which would
    shift the run's random state), so they are not read here."""
    if isinstance(dataset, (list, tuple)):
        example = dataset[0] if dataset else None
    elif is_hf_dataset(dataset) and dataset.format.get("type") != "custom" and len(dataset):
        try:
            example = dataset[0]
        except Exception:  # reading is a courtesy: the loop reports a dataset that fails
            return None
    else:
        return None
    return example if isinstance(example, Mapping) else None


def _check_text_inputs(example: Mapping[str, Any], model: Any) -> None:
    try:
        parameters = _forward_signature(model).parameters.values()
    except TypeError:
        return
    required = {
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    text = sorted(key for key in required if key in example and _is_text(example[key]))
    if not text:
        return
    raise TypeError(
        f"The training examples hold text under {', '.join(map(repr, text))}, which "
        f"{type(model).__name__}.forward requires, but the default data collator leaves "
        "text out of the batch (a model takes tensors), so the first step would fail. "
        "Tokenize the dataset first (e.g. dataset.map(lambda e: tokenizer(e['text']), "
        "batched=True)), or pass a data_collator that turns the text into tensors."
    )


def _is_text(value: Any) -> bool:
    if isinstance(value, (str, bytes)):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], (str, bytes))


def _check_label_names_present(example: Mapping[str, Any], label_names: Any) -> None:
    if not label_names:  # None: the model's own names; []: no labels, on purpose
        return
    names = [label_names] if isinstance(label_names, str) else list(label_names)
    keys = {key for key in example if key not in _LABEL_RENAMES}
    if any(example.get(key) is not None for key in _LABEL_RENAMES):
        keys.add("labels")
    missing = [name for name in names if name not in keys]
    if not missing:
        return
    renamed = [name for name in missing if name in _LABEL_RENAMES]
    hint = (
        f" ({', '.join(map(repr, renamed))} is renamed 'labels' by the default collator)"
        if renamed
        else ""
    )
    raise ValueError(
        f"label_names={names!r}, but the batches will have no {', '.join(map(repr, missing))}"
        f"{hint}: their keys are {', '.join(map(repr, sorted(keys)))}. Evaluations would "
        "find no labels, so they would report no eval_loss and never call "
        "compute_metrics. Set label_names to the batches' label keys (e.g. "
        "label_names=['labels']), or leave it unset to use the model's."
    )
