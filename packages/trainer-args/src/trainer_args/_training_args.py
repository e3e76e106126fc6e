"""TrainingArguments: every setting of a training run, as one flat dataclass.

The class is flat and public for compatibility with the reference API (scripts build it
directly or through ``HfArgumentParser``). Its behaviour lives in small modules:
``_pipeline`` (what happens at construction: deprecations, normalisation, validation),
``_setters`` (the ``set_*`` helpers), ``_process`` (rank, device and logging properties,
torch loaded lazily) and ``_serialization`` (``to_dict`` and friends).
"""

# The annotations use typing.Union/Optional/List on purpose: HfArgumentParser turns
# these hints (read with typing.get_type_hints) into command-line options and expects the
# typing forms, which also read the same on every supported Python version.
# ruff: noqa: UP006, UP007, UP035, UP045

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, ClassVar, List, Optional, Union

from trainer_args._aliases import assign_setting
from trainer_args._enums import (
    DDP_BACKENDS,
    HALF_PRECISION_BACKENDS,
    TRAINER_LOG_LEVELS,
    DebugOption,
    FSDPOption,
    HubStrategy,
    IntervalStrategy,
    OptimizerNames,
    SaveStrategy,
    SchedulerType,
    ShardedDDPOption,
)
from trainer_args._help import help_for as _h
from trainer_args._pipeline import finalize
from trainer_args._process import ProcessMixin
from trainer_args._serialization import SerializationMixin
from trainer_args._setters import SettersMixin
from trainer_args._transformers5 import MULTIPROCESSING_CONTEXTS, TRAIN_SAMPLING_STRATEGIES

_LOG_CHOICES = list(TRAINER_LOG_LEVELS)


@dataclass(repr=False)
class TrainingArguments(SettersMixin, ProcessMixin, SerializationMixin):
    """The arguments of a training run that concern the training loop itself.

    Construction checks and normalises the values (see the package README for every
    rule): strategy names become enums, ``fsdp``/``debug`` strings become option lists,
    deprecated spellings are mapped onto their replacements with a ``FutureWarning``,
    and contradictory settings raise a ``ValueError`` naming the arguments involved.
    Building an object from another's :meth:`to_dict` gives an equal object.

    Nothing here imports torch until ``device``, ``n_gpu`` or a property derived from
    them is read, and no process group is started, with one exception taken from the
    reference: with a ZeRO-3 DeepSpeed config, the installed arguments hooks (trainer-dist)
    join the launcher's processes and register the config with transformers, so that
    ``from_pretrained`` partitions the model as it loads it; the registration lives as
    long as the arguments, in ``hf_deepspeed_config``. With any DeepSpeed config those
    hooks also check it against the arguments, so that a contradiction (or an ``"auto"``
    nothing can fill) is refused here.

    Args:
        output_dir: the folder for checkpoints and outputs (``~`` is expanded);
            ``"trainer_output"`` when left out or None, as in transformers >= 4.50.
        **kwargs: any other field, as keyword; see each field's help text.
    """

    # Fields in the order of the reference signature (the first 112), then the later
    # upstream additions. Each field's help text is in _help.HELP.
    output_dir: Optional[str] = field(default=None, metadata=_h("output_dir"))
    overwrite_output_dir: bool = field(default=False, metadata=_h("overwrite_output_dir"))
    do_train: bool = field(default=False, metadata=_h("do_train"))
    do_eval: bool = field(default=False, metadata=_h("do_eval"))
    do_predict: bool = field(default=False, metadata=_h("do_predict"))
    evaluation_strategy: Union[IntervalStrategy, str] = field(
        default="no", metadata=_h("evaluation_strategy")
    )
    prediction_loss_only: bool = field(default=False, metadata=_h("prediction_loss_only"))
    per_device_train_batch_size: int = field(default=8, metadata=_h("per_device_train_batch_size"))
    per_device_eval_batch_size: int = field(default=8, metadata=_h("per_device_eval_batch_size"))
    per_gpu_train_batch_size: Optional[int] = field(
        default=None, metadata=_h("per_gpu_train_batch_size")
    )
    per_gpu_eval_batch_size: Optional[int] = field(
        default=None, metadata=_h("per_gpu_eval_batch_size")
    )
    gradient_accumulation_steps: int = field(default=1, metadata=_h("gradient_accumulation_steps"))
    eval_accumulation_steps: Optional[int] = field(
        default=None, metadata=_h("eval_accumulation_steps")
    )
    eval_delay: Optional[float] = field(default=0, metadata=_h("eval_delay"))
    learning_rate: float = field(default=5e-5, metadata=_h("learning_rate"))
    weight_decay: float = field(default=0.0, metadata=_h("weight_decay"))
    adam_beta1: float = field(default=0.9, metadata=_h("adam_beta1"))
    adam_beta2: float = field(default=0.999, metadata=_h("adam_beta2"))
    adam_epsilon: float = field(default=1e-8, metadata=_h("adam_epsilon"))
    max_grad_norm: float = field(default=1.0, metadata=_h("max_grad_norm"))
    num_train_epochs: float = field(default=3.0, metadata=_h("num_train_epochs"))
    max_steps: int = field(default=-1, metadata=_h("max_steps"))
    lr_scheduler_type: Union[SchedulerType, str] = field(
        default="linear", metadata=_h("lr_scheduler_type")
    )
    warmup_ratio: float = field(default=0.0, metadata=_h("warmup_ratio"))
    # float for the parsers (transformers' too): below 1 it is a share of the run.
    warmup_steps: float = field(default=0, metadata={**_h("warmup_steps"), "type": float})
    log_level: Optional[str] = field(
        default="passive", metadata=_h("log_level", choices=_LOG_CHOICES)
    )
    log_level_replica: Optional[str] = field(
        default="warning", metadata=_h("log_level_replica", choices=_LOG_CHOICES)
    )
    log_on_each_node: bool = field(default=True, metadata=_h("log_on_each_node"))
    logging_dir: Optional[str] = field(default=None, metadata=_h("logging_dir"))
    logging_strategy: Union[IntervalStrategy, str] = field(
        default="steps", metadata=_h("logging_strategy")
    )
    logging_first_step: bool = field(default=False, metadata=_h("logging_first_step"))
    logging_steps: float = field(default=500, metadata=_h("logging_steps"))
    logging_nan_inf_filter: bool = field(default=True, metadata=_h("logging_nan_inf_filter"))
    save_strategy: Union[SaveStrategy, str] = field(default="steps", metadata=_h("save_strategy"))
    save_steps: float = field(default=500, metadata=_h("save_steps"))
    save_total_limit: Optional[int] = field(default=None, metadata=_h("save_total_limit"))
    save_safetensors: Optional[bool] = field(default=False, metadata=_h("save_safetensors"))
    save_on_each_node: bool = field(default=False, metadata=_h("save_on_each_node"))
    no_cuda: bool = field(default=False, metadata=_h("no_cuda"))
    use_cpu: bool = field(default=False, metadata=_h("use_cpu"))
    use_mps_device: bool = field(default=False, metadata=_h("use_mps_device"))
    seed: int = field(default=42, metadata=_h("seed"))
    data_seed: Optional[int] = field(default=None, metadata=_h("data_seed"))
    jit_mode_eval: bool = field(default=False, metadata=_h("jit_mode_eval"))
    use_ipex: bool = field(default=False, metadata=_h("use_ipex"))
    bf16: bool = field(default=False, metadata=_h("bf16"))
    fp16: bool = field(default=False, metadata=_h("fp16"))
    fp16_opt_level: str = field(default="O1", metadata=_h("fp16_opt_level"))
    half_precision_backend: str = field(
        default="auto",
        metadata=_h("half_precision_backend", choices=list(HALF_PRECISION_BACKENDS)),
    )
    bf16_full_eval: bool = field(default=False, metadata=_h("bf16_full_eval"))
    fp16_full_eval: bool = field(default=False, metadata=_h("fp16_full_eval"))
    tf32: Optional[bool] = field(default=None, metadata=_h("tf32"))
    local_rank: int = field(default=-1, metadata=_h("local_rank"))
    ddp_backend: Optional[str] = field(
        default=None, metadata=_h("ddp_backend", choices=list(DDP_BACKENDS))
    )
    tpu_num_cores: Optional[int] = field(default=None, metadata=_h("tpu_num_cores"))
    tpu_metrics_debug: bool = field(default=False, metadata=_h("tpu_metrics_debug"))
    debug: Union[str, List[DebugOption]] = field(default="", metadata=_h("debug"))
    dataloader_drop_last: bool = field(default=False, metadata=_h("dataloader_drop_last"))
    eval_steps: Optional[float] = field(default=None, metadata=_h("eval_steps"))
    dataloader_num_workers: int = field(default=0, metadata=_h("dataloader_num_workers"))
    past_index: int = field(default=-1, metadata=_h("past_index"))
    run_name: Optional[str] = field(default=None, metadata=_h("run_name"))
    disable_tqdm: Optional[bool] = field(default=None, metadata=_h("disable_tqdm"))
    remove_unused_columns: Optional[bool] = field(
        default=True, metadata=_h("remove_unused_columns")
    )
    label_names: Optional[List[str]] = field(default=None, metadata=_h("label_names"))
    load_best_model_at_end: Optional[bool] = field(
        default=False, metadata=_h("load_best_model_at_end")
    )
    metric_for_best_model: Optional[str] = field(default=None, metadata=_h("metric_for_best_model"))
    greater_is_better: Optional[bool] = field(default=None, metadata=_h("greater_is_better"))
    ignore_data_skip: bool = field(default=False, metadata=_h("ignore_data_skip"))
    sharded_ddp: Union[List[ShardedDDPOption], str, None] = field(
        default="", metadata=_h("sharded_ddp")
    )
    fsdp: Union[List[FSDPOption], str, None] = field(
        default="", metadata={**_h("fsdp"), "nargs": "?", "const": True}
    )
    fsdp_min_num_params: int = field(default=0, metadata=_h("fsdp_min_num_params"))
    fsdp_config: Union[dict, str, None] = field(default=None, metadata=_h("fsdp_config"))
    fsdp_transformer_layer_cls_to_wrap: Optional[str] = field(
        default=None, metadata=_h("fsdp_transformer_layer_cls_to_wrap")
    )
    deepspeed: Union[dict, str, None] = field(default=None, metadata=_h("deepspeed"))
    label_smoothing_factor: float = field(default=0.0, metadata=_h("label_smoothing_factor"))
    optim: Union[OptimizerNames, str] = field(default="adamw_torch", metadata=_h("optim"))
    optim_args: Optional[str] = field(default=None, metadata=_h("optim_args"))
    adafactor: bool = field(default=False, metadata=_h("adafactor"))
    group_by_length: bool = field(default=False, metadata=_h("group_by_length"))
    length_column_name: Optional[str] = field(default="length", metadata=_h("length_column_name"))
    report_to: Optional[List[str]] = field(default=None, metadata=_h("report_to"))
    ddp_find_unused_parameters: Optional[bool] = field(
        default=None, metadata=_h("ddp_find_unused_parameters")
    )
    ddp_bucket_cap_mb: Optional[int] = field(default=None, metadata=_h("ddp_bucket_cap_mb"))
    ddp_broadcast_buffers: Optional[bool] = field(
        default=None, metadata=_h("ddp_broadcast_buffers")
    )
    dataloader_pin_memory: bool = field(default=True, metadata=_h("dataloader_pin_memory"))
    skip_memory_metrics: bool = field(default=True, metadata=_h("skip_memory_metrics"))
    use_legacy_prediction_loop: bool = field(
        default=False, metadata=_h("use_legacy_prediction_loop")
    )
    push_to_hub: bool = field(default=False, metadata=_h("push_to_hub"))
    resume_from_checkpoint: Optional[str] = field(
        default=None, metadata=_h("resume_from_checkpoint")
    )
    hub_model_id: Optional[str] = field(default=None, metadata=_h("hub_model_id"))
    hub_strategy: Union[HubStrategy, str] = field(default="every_save", metadata=_h("hub_strategy"))
    hub_token: Optional[str] = field(default=None, metadata=_h("hub_token"))
    hub_private_repo: bool = field(default=False, metadata=_h("hub_private_repo"))
    hub_always_push: bool = field(default=False, metadata=_h("hub_always_push"))
    gradient_checkpointing: bool = field(default=False, metadata=_h("gradient_checkpointing"))
    include_inputs_for_metrics: bool = field(
        default=False, metadata=_h("include_inputs_for_metrics")
    )
    fp16_backend: str = field(
        default="auto", metadata=_h("fp16_backend", choices=list(HALF_PRECISION_BACKENDS))
    )
    push_to_hub_model_id: Optional[str] = field(default=None, metadata=_h("push_to_hub_model_id"))
    push_to_hub_organization: Optional[str] = field(
        default=None, metadata=_h("push_to_hub_organization")
    )
    push_to_hub_token: Optional[str] = field(default=None, metadata=_h("push_to_hub_token"))
    mp_parameters: str = field(default="", metadata=_h("mp_parameters"))
    auto_find_batch_size: bool = field(default=False, metadata=_h("auto_find_batch_size"))
    full_determinism: bool = field(default=False, metadata=_h("full_determinism"))
    torchdynamo: Optional[str] = field(default=None, metadata=_h("torchdynamo"))
    ray_scope: Optional[str] = field(default="last", metadata=_h("ray_scope"))
    ddp_timeout: Optional[int] = field(default=1800, metadata=_h("ddp_timeout"))
    torch_compile: bool = field(default=False, metadata=_h("torch_compile"))
    torch_compile_backend: Optional[str] = field(default=None, metadata=_h("torch_compile_backend"))
    torch_compile_mode: Optional[str] = field(default=None, metadata=_h("torch_compile_mode"))
    dispatch_batches: Optional[bool] = field(default=None, metadata=_h("dispatch_batches"))
    include_tokens_per_second: Optional[bool] = field(
        default=False, metadata=_h("include_tokens_per_second")
    )

    # --- later upstream additions -------------------------------------------------------
    eval_strategy: Union[IntervalStrategy, str, None] = field(
        default=None, metadata=_h("eval_strategy")
    )
    eval_on_start: bool = field(default=False, metadata=_h("eval_on_start"))
    batch_eval_metrics: bool = field(default=False, metadata=_h("batch_eval_metrics"))
    eval_do_concat_batches: bool = field(default=True, metadata=_h("eval_do_concat_batches"))
    eval_use_gather_object: bool = field(default=False, metadata=_h("eval_use_gather_object"))
    save_only_model: bool = field(default=False, metadata=_h("save_only_model"))
    restore_callback_states_from_checkpoint: bool = field(
        default=False, metadata=_h("restore_callback_states_from_checkpoint")
    )
    include_for_metrics: List[str] = field(default_factory=list, metadata=_h("include_for_metrics"))
    # bool for the parser; transformers 5's "no"/"all"/"non_padding" are translated.
    include_num_input_tokens_seen: bool = field(
        default=False, metadata=_h("include_num_input_tokens_seen")
    )
    average_tokens_across_devices: bool = field(
        default=True, metadata=_h("average_tokens_across_devices")
    )
    dataloader_prefetch_factor: Optional[int] = field(
        default=None, metadata=_h("dataloader_prefetch_factor")
    )
    dataloader_persistent_workers: bool = field(
        default=False, metadata=_h("dataloader_persistent_workers")
    )
    lr_scheduler_kwargs: Union[dict, str, None] = field(
        default_factory=dict, metadata=_h("lr_scheduler_kwargs")
    )
    gradient_checkpointing_kwargs: Union[dict, str, None] = field(
        default=None, metadata=_h("gradient_checkpointing_kwargs")
    )
    activation_checkpointing: Optional[bool] = field(
        default=None, metadata=_h("activation_checkpointing")
    )
    activation_checkpointing_kwargs: Union[dict, str, None] = field(
        default=None, metadata=_h("activation_checkpointing_kwargs")
    )
    neftune_noise_alpha: Optional[float] = field(default=None, metadata=_h("neftune_noise_alpha"))
    # None first, as transformers spells it: its HfArgumentParser tests
    # isinstance(None, <the Union's second member>), which raises for List[str].
    optim_target_modules: Union[None, str, List[str]] = field(  # noqa: RUF036 (above)
        default=None, metadata=_h("optim_target_modules")
    )
    torch_empty_cache_steps: Optional[int] = field(
        default=None, metadata=_h("torch_empty_cache_steps")
    )
    accelerator_config: Union[dict, str, None] = field(
        default=None, metadata=_h("accelerator_config")
    )
    split_batches: Optional[bool] = field(default=None, metadata=_h("split_batches"))
    hub_revision: Optional[str] = field(default=None, metadata=_h("hub_revision"))
    ddp_static_graph: Optional[bool] = field(default=None, metadata=_h("ddp_static_graph"))

    # --- transformers 5 fields (see _transformers5: kept, translated, or refused) --------
    use_liger_kernel: bool = field(default=False, metadata=_h("use_liger_kernel"))
    liger_kernel_config: Union[dict, str, None] = field(
        default=None, metadata=_h("liger_kernel_config")
    )
    use_cache: bool = field(default=False, metadata=_h("use_cache"))
    project: str = field(default="huggingface", metadata=_h("project"))
    trackio_space_id: Optional[str] = field(default=None, metadata=_h("trackio_space_id"))
    trackio_bucket_id: Optional[str] = field(default=None, metadata=_h("trackio_bucket_id"))
    trackio_static_space_id: Optional[str] = field(
        default=None, metadata=_h("trackio_static_space_id")
    )
    enable_jit_checkpoint: bool = field(default=False, metadata=_h("enable_jit_checkpoint"))
    parallelism_config: Any = field(default=None, metadata=_h("parallelism_config"))
    dataloader_multiprocessing_context: Optional[str] = field(
        default=None,
        metadata=_h("dataloader_multiprocessing_context", choices=list(MULTIPROCESSING_CONTEXTS)),
    )
    dataloader_in_order: bool = field(default=True, metadata=_h("dataloader_in_order"))
    train_sampling_strategy: str = field(
        default="random",
        metadata=_h("train_sampling_strategy", choices=list(TRAIN_SAMPLING_STRATEGIES)),
    )

    # Not an argument: what each pair of spellings above held when these arguments were
    # finished. dataclasses.replace() and to_dict() carry it into a copy, so that the
    # spelling the copy edits wins over its stale twin (see _aliases). Not compared, and
    # left out of --help (ours and transformers' parser: argparse.SUPPRESS).
    _resolved_spellings: Optional[dict] = field(
        default=None,
        repr=False,
        compare=False,
        metadata=_h("_resolved_spellings", help=argparse.SUPPRESS),
    )

    # Values the constructor takes beyond a field's annotation, which HfArgumentParser's
    # dict / JSON / YAML paths pass through (the constructor checks them): transformers
    # 5's training_args.json writes hub_private_repo null and fsdp true; a warmup below 1
    # is a share of the run; include_num_input_tokens_seen takes "all" / "non_padding".
    _dict_value_types: ClassVar[dict[str, tuple[type, ...]]] = {
        "hub_private_repo": (type(None),),
        "warmup_steps": (float,),
        "fsdp": (bool,),
        "include_num_input_tokens_seen": (str,),
    }

    def __post_init__(self) -> None:
        finalize(self)

    def __setattr__(self, name: str, value: Any) -> None:
        # After construction, the two spellings of one setting stay in step: assigning
        # eval_strategy also updates evaluation_strategy, and so on (see _aliases).
        if self.__dict__.get("_finalized", False):
            assign_setting(self, name, value)
            return
        object.__setattr__(self, name, value)
