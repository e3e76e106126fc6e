"""What happens when a TrainingArguments is constructed, stage by stage.

1. parse: paths expanded, option strings split into enum lists, mappings loaded;
2. deprecations: old spellings moved onto their replacements (``FutureWarning``);
3. aliases and enums: both spellings of the evaluation strategy (and of activation
   checkpointing, the metric includes and the sampling order) agree, an edit made in a
   copy winning (``_aliases``); names become enum members;
4. derived defaults: values left unset that follow from others (``logging_dir``,
   ``run_name``, ``eval_steps``, ``metric_for_best_model``, ...);
5. validation: every rule of ``_validation.RULES``;
6. record: what each pair of spellings resolved to (``_resolved_spellings``);
7. hooks: with DeepSpeed only, the installed arguments hooks (``_hooks``), e.g.
   trainer-dist's registration of a ZeRO-3 config for ``from_pretrained``.

Every stage is idempotent, which is what makes ``TrainingArguments(**args.to_dict())``
equal to ``args``.
"""

from __future__ import annotations

import os
from typing import Any

from trainer_args._accelerator_config import (
    ACCELERATOR_CONFIG_KEYS,
    AcceleratorConfig,
    given_accelerator_options,
)
from trainer_args._accumulation_kwargs import apply_accumulation_kwargs
from trainer_args._aliases import (
    apply_spelling_edits,
    remember_spellings,
    resolve_activation_checkpointing,
    resolve_eval_strategy,
    resolve_metric_includes,
)
from trainer_args._deprecations import apply_deprecations
from trainer_args._enums import (
    HubStrategy,
    IntervalStrategy,
    OptimizerNames,
    SaveStrategy,
    SchedulerType,
)
from trainer_args._field_types import BOOL_WORDS, bool_field_names, bool_from_word
from trainer_args._fsdp import (
    complete_fsdp_config,
    load_fsdp_config,
    normalize_option_lists,
    reject_sharded_ddp,
)
from trainer_args._hooks import run_argument_hooks
from trainer_args._json_args import load_mapping
from trainer_args._launch_env import read_launch_env
from trainer_args._messages import coerce_enum, invalid, wrong_type
from trainer_args._serialization import is_masked_secret
from trainer_args._steps import normalize_step_interval, normalize_warmup
from trainer_args._transformers5 import resolve_transformers5_fields
from trainer_args._validation import RULES

# --- 1. parse ------------------------------------------------------------------------


DEFAULT_OUTPUT_DIR = "trainer_output"
"""The ``output_dir`` of arguments built without one (transformers' default since 4.50)."""


def expand_paths(args: Any) -> None:
    """``output_dir`` (``DEFAULT_OUTPUT_DIR`` when None) and ``logging_dir`` become
    strings with ``~`` expanded."""
    if args.output_dir is None:
        _default_output_dir(args)
    if not isinstance(args.output_dir, (str, os.PathLike)):
        raise wrong_type("output_dir", args.output_dir, "a folder path (str)")
    args.output_dir = os.path.expanduser(os.fspath(args.output_dir))
    if not args.output_dir.strip():  # an unset environment variable, say
        raise invalid(
            "output_dir",
            args.output_dir,
            "a folder path",
            f"Name the folder, or leave output_dir unset for {DEFAULT_OUTPUT_DIR!r}.",
        )
    if args.logging_dir is not None:
        args.logging_dir = os.path.expanduser(os.fspath(args.logging_dir))


def _default_output_dir(args: Any) -> None:
    """Fill the default folder, saying so: checkpoints land in the working directory."""
    import logging

    args.output_dir = DEFAULT_OUTPUT_DIR
    logging.getLogger("trainer").info(
        "No output_dir given: writing to %r. Pass output_dir (--output_dir) to choose the folder.",
        DEFAULT_OUTPUT_DIR,
    )


def normalize_report_to(value: Any) -> list[str]:
    """``None``/``"none"`` -> ``[]``; a name -> ``[name]``; ``"all"`` -> the names of the
    reporters whose library is installed, as the reference expands it, so that scripts testing
    ``"wandb" in args.report_to`` (and the run's recorded arguments) see the real list.
    Only package metadata is read: no reporter is imported."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise wrong_type("report_to", value, "a reporter name or a list of names")
    items = list(dict.fromkeys(items))
    if "none" in items:
        if len(items) > 1:
            raise invalid(
                "report_to",
                value,
                "'none' alone, or a list of reporter names",
                "Drop 'none' to report to the others, or pass only 'none'.",
            )
        return []
    if "all" in items:
        # Imported here: reading entry points loads importlib.metadata, which the plain
        # `import trainer_args` keeps out.
        from trainer_core import REPORT_TO_GROUP, installed_plugins

        installed = sorted(installed_plugins(REPORT_TO_GROUP))
        items = list(dict.fromkeys([*installed, *(i for i in items if i != "all")]))
    return items


def _load_deepspeed(value: Any) -> Any:
    """Keep a DeepSpeed file path (checked to exist), parse JSON text, copy a dict."""
    if isinstance(value, (str, os.PathLike)) and not os.fspath(value).strip().startswith("{"):
        path = os.path.expanduser(os.fspath(value))
        if not os.path.isfile(path):
            raise invalid(
                "deepspeed",
                value,
                "the path of an existing DeepSpeed JSON config, JSON text, or a dict",
                "Check the path.",
            )
        return path
    return load_mapping("deepspeed", value, allow_path=False)


def _load_accelerator_config(value: Any) -> dict[str, Any] | None:
    """The options given, as a dict (wrapped into an ``AcceleratorConfig`` once every
    stage that may move a deprecated option into it has run)."""
    config = given_accelerator_options(value)
    if config is None:
        config = load_mapping("accelerator_config", value, allow_path=True)
    unknown = sorted(set(config or {}) - set(ACCELERATOR_CONFIG_KEYS))
    if unknown:
        raise invalid(
            "accelerator_config",
            value,
            f"keys among {', '.join(ACCELERATOR_CONFIG_KEYS)}",
            f"Remove or fix {unknown}.",
        )
    return config


def _check_target_modules(value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise wrong_type("optim_target_modules", value, "a module name, a regex or a list of names")


def drop_masked_tokens(args: Any) -> None:
    """A ``*_token`` holding the mask ``to_dict`` writes (``"<HUB_TOKEN>"``) is no token:
    it becomes None, so that the Hub login is used, as when no token was given."""
    import dataclasses

    for spec in dataclasses.fields(args):
        if is_masked_secret(spec.name, getattr(args, spec.name)):
            setattr(args, spec.name, None)


def normalize_label_names(value: Any) -> list[str] | None:
    """``None`` stays None (the model's usual names); one name becomes ``[name]``, as a
    list of names is expected everywhere (``list("labels")`` would be its letters)."""
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise wrong_type(
            "label_names", value, "a list of input key names (str), e.g. label_names=['labels']"
        )
    if "" in names:
        raise invalid("label_names", list(names), "non-empty key names", "Drop the empty name.")
    return list(names)


def _check_metric_name(args: Any) -> None:
    metric = args.metric_for_best_model
    if metric is not None and not isinstance(metric, str):
        raise wrong_type("metric_for_best_model", metric, "a metric name (str), e.g. 'loss'")


def read_bool_words(args: Any) -> None:
    """A bool argument given as a word (``"False"``, ``"no"``, read from a config or an
    environment variable) means what it says, as on the command line; any other string
    is refused. Left as a string, ``"False"`` would count as true. Fields that also take
    words of their own (``include_num_input_tokens_seen="non_padding"``, listed in
    ``_dict_value_types``) are left to their own reading."""
    own_words = getattr(type(args), "_dict_value_types", {})
    for name in bool_field_names(type(args)):
        value = getattr(args, name)
        if not isinstance(value, str) or str in own_words.get(name, ()):
            continue
        try:
            setattr(args, name, bool_from_word(value))
        except ValueError:
            raise invalid(name, value, "a bool", f"Pass True or False ({BOOL_WORDS}).") from None


def parse_values(args: Any) -> None:
    """Bring every structured argument into its canonical type."""
    read_bool_words(args)
    expand_paths(args)
    drop_masked_tokens(args)
    _check_metric_name(args)
    args.label_names = normalize_label_names(args.label_names)
    normalize_warmup(args)
    reject_sharded_ddp(args)
    load_fsdp_config(args)
    normalize_option_lists(args)
    args.accelerator_config = _load_accelerator_config(args.accelerator_config)
    args.lr_scheduler_kwargs = (
        load_mapping("lr_scheduler_kwargs", args.lr_scheduler_kwargs, allow_path=False) or {}
    )
    for name in (
        "gradient_checkpointing_kwargs",
        "activation_checkpointing_kwargs",
        "liger_kernel_config",
    ):
        setattr(args, name, load_mapping(name, getattr(args, name), allow_path=False))
    args.deepspeed = None if args.deepspeed is None else _load_deepspeed(args.deepspeed)
    args.report_to = normalize_report_to(args.report_to)
    _check_target_modules(args.optim_target_modules)


# --- 3. enums --------------------------------------------------------------------------


def coerce_enums(args: Any) -> None:
    """Name arguments become enum members (which still compare equal to the strings);
    the two spellings of one setting agree (an edit made in a copy wins first)."""
    apply_spelling_edits(args)
    resolve_eval_strategy(args)
    resolve_metric_includes(args)
    resolve_activation_checkpointing(args)
    resolve_transformers5_fields(args)
    args.logging_strategy = coerce_enum("logging_strategy", args.logging_strategy, IntervalStrategy)
    args.save_strategy = coerce_enum("save_strategy", args.save_strategy, SaveStrategy)
    args.lr_scheduler_type = coerce_enum("lr_scheduler_type", args.lr_scheduler_type, SchedulerType)
    args.optim = coerce_enum("optim", args.optim, OptimizerNames)
    args.hub_strategy = coerce_enum("hub_strategy", args.hub_strategy, HubStrategy)


# --- 4. derived defaults ---------------------------------------------------------------


def default_logging_dir(output_dir: str) -> str:
    """``<output_dir>/runs/<Mon><DD>_<HH>-<MM>-<SS>_<hostname>``, as the reference names it."""
    import socket
    import time

    stamp = time.strftime("%b%d_%H-%M-%S")
    return os.path.join(output_dir, "runs", f"{stamp}_{socket.gethostname()}")


def _normalize_log_level(value: Any, default: str) -> Any:
    return default if value is None else value.lower() if isinstance(value, str) else value


def _default_disable_tqdm() -> bool:
    import logging

    return logging.getLogger("trainer").getEffectiveLevel() > logging.WARNING


def fill_step_intervals(args: Any) -> None:
    """Check the intervals; ``eval_steps`` defaults to ``logging_steps`` (also when given
    as 0 with ``eval_strategy="steps"``, which the reference reads as "unset")."""
    args.logging_steps = normalize_step_interval("logging_steps", args.logging_steps)
    args.save_steps = normalize_step_interval("save_steps", args.save_steps)
    unset = args.eval_steps is None or (
        args.eval_steps == 0 and not isinstance(args.eval_steps, bool)
    )
    if unset and args.eval_strategy == IntervalStrategy.STEPS:
        args.eval_steps = args.logging_steps
    if args.eval_steps is not None:
        args.eval_steps = normalize_step_interval("eval_steps", args.eval_steps)


def fill_best_model(args: Any) -> None:
    """Loading the best model at the end defaults the metric to the loss, lower being
    better; so does ``reduce_lr_on_plateau``, which steps on that metric (as in
    transformers 5). ``save_strategy="best"`` alone names no default: the validation
    asks for the metric, as transformers 5 does."""
    tracks_best = (
        args.load_best_model_at_end or args.lr_scheduler_type == SchedulerType.REDUCE_ON_PLATEAU
    )
    if tracks_best and args.metric_for_best_model is None:
        args.metric_for_best_model = "loss"
    if args.greater_is_better is None and args.metric_for_best_model is not None:
        args.greater_is_better = not args.metric_for_best_model.endswith("loss")


def fill_defaults(args: Any) -> None:
    """Set what the user left unset and that follows from the other arguments."""
    if args.logging_dir is None:
        args.logging_dir = default_logging_dir(args.output_dir)
    if args.run_name is None:
        args.run_name = args.output_dir
    if args.evaluation_strategy != IntervalStrategy.NO:
        args.do_eval = True
    fill_step_intervals(args)
    fill_best_model(args)
    if args.torch_compile_backend is not None or args.torch_compile_mode is not None:
        args.torch_compile = True
    if args.torch_compile and args.torch_compile_backend is None:
        args.torch_compile_backend = "inductor"
    args.log_level = _normalize_log_level(args.log_level, "passive")
    args.log_level_replica = _normalize_log_level(args.log_level_replica, "warning")
    if args.disable_tqdm is None:
        args.disable_tqdm = _default_disable_tqdm()
    apply_accumulation_kwargs(args)
    launched = read_launch_env()
    if launched.local_rank != -1:
        args.local_rank = launched.local_rank
    complete_fsdp_config(args)


# --- all stages ------------------------------------------------------------------------


def finalize(args: Any, extra_rules: tuple[Any, ...] = ()) -> None:
    """Run every construction stage on ``args``, then mark it finished.

    Args:
        args: a freshly initialised TrainingArguments (or subclass).
        extra_rules: further validation functions (a subclass's own rules).
    """
    object.__setattr__(args, "_finalized", False)
    parse_values(args)
    apply_deprecations(args)
    coerce_enums(args)
    fill_defaults(args)
    for rule in (*RULES, *extra_rules):
        rule(args)
    args.accelerator_config = AcceleratorConfig(**(args.accelerator_config or {}))
    remember_spellings(args)
    object.__setattr__(args, "_finalized", True)
    run_argument_hooks(args)  # last: hooks see finished arguments (DeepSpeed runs only)
