"""Help text of every TrainingArguments field, keyed by field name.

The texts live apart from the dataclass so that the field list stays readable at a
glance; ``HfArgumentParser`` shows them in ``--help`` through each field's
``metadata["help"]``. A test checks that every field has exactly one entry here.
"""

from __future__ import annotations

from typing import Any

HELP: dict[str, str] = {
    # --- where things go -----------------------------------------------------------------
    "output_dir": (
        "Folder for checkpoints, predictions and the final model. Default: trainer_output."
    ),
    "overwrite_output_dir": (
        "Allow writing into an output_dir that already holds files. Useful to keep "
        "training in the same folder when output_dir points at a checkpoint folder."
    ),
    # --- what to run ---------------------------------------------------------------------
    "do_train": "Run training. Scripts read this flag; Trainer itself does not.",
    "do_eval": (
        "Run evaluation on the validation set. Switched on automatically when the "
        "evaluation strategy is not 'no'. Scripts read this flag; Trainer itself does not."
    ),
    "do_predict": "Run prediction on the test set. Scripts read this flag; Trainer does not.",
    "evaluation_strategy": (
        "When to evaluate during training: 'no', 'steps' (every eval_steps) or 'epoch' "
        "(after each epoch). Same setting as eval_strategy."
    ),
    "prediction_loss_only": "During evaluation and prediction, return only the loss.",
    # --- batches -------------------------------------------------------------------------
    "per_device_train_batch_size": "Training batch size on each device (GPU, TPU core or CPU).",
    "per_device_eval_batch_size": "Evaluation batch size on each device (GPU, TPU core or CPU).",
    "per_gpu_train_batch_size": "Deprecated: use per_device_train_batch_size.",
    "per_gpu_eval_batch_size": "Deprecated: use per_device_eval_batch_size.",
    "gradient_accumulation_steps": (
        "Number of forward/backward passes whose gradients are summed before one optimizer "
        "step. Logging, evaluation and saving intervals count optimizer steps."
    ),
    "eval_accumulation_steps": (
        "Move accumulated predictions to the CPU every this many evaluation steps. Unset: "
        "keep everything on the device until the end (faster, more device memory)."
    ),
    "eval_delay": (
        "Epochs or steps (following the evaluation strategy) to wait before the first evaluation."
    ),
    # --- optimizer -----------------------------------------------------------------------
    "learning_rate": "Peak learning rate of the optimizer (AdamW by default).",
    "weight_decay": (
        "Weight decay applied to every parameter except biases and normalization weights."
    ),
    "adam_beta1": "beta1 of Adam-style optimizers.",
    "adam_beta2": "beta2 of Adam-style optimizers.",
    "adam_epsilon": "epsilon of Adam-style optimizers.",
    "max_grad_norm": "Clip the global gradient norm to this value (0 or less: no clipping).",
    "num_train_epochs": (
        "Number of passes over the training set. A fractional part runs that share of the "
        "last epoch."
    ),
    "max_steps": (
        "When positive, the total number of optimizer steps; it overrides num_train_epochs. "
        "Training may stop earlier if a finite iterable dataset runs out."
    ),
    "lr_scheduler_type": "Learning-rate schedule, e.g. 'linear', 'cosine', 'constant'.",
    "warmup_ratio": "Share of the total training steps spent warming the learning rate up.",
    "warmup_steps": (
        "Number of warm-up steps; when positive it takes precedence over warmup_ratio. "
        "A value below 1 is read as a ratio of the run (transformers 5's spelling)."
    ),
    # --- logging -------------------------------------------------------------------------
    "log_level": (
        "Logger level of the main process: 'detail', 'debug', 'info', 'warning', 'error', "
        "'critical' or 'passive' (leave the current level alone)."
    ),
    "log_level_replica": "Logger level of replica processes; same choices as log_level.",
    "log_on_each_node": (
        "In multi-node runs, let the main process of every node log, not only node 0's."
    ),
    "logging_dir": "Folder for TensorBoard logs. Default: output_dir/runs/<date>_<host>.",
    "logging_strategy": "When to log: 'no', 'steps' (every logging_steps) or 'epoch'.",
    "logging_first_step": "Also log (and evaluate, if evaluating) at the first step.",
    "logging_steps": (
        "Log every this many optimizer steps; a float below 1 is a fraction of the run."
    ),
    "logging_nan_inf_filter": (
        "Leave NaN and infinite losses out of the logged training loss average. Only "
        "affects what is logged, never the gradients."
    ),
    # --- saving --------------------------------------------------------------------------
    "save_strategy": (
        "When to write checkpoints: 'no', 'steps' (every save_steps), 'epoch', or 'best' "
        "(whenever metric_for_best_model improves)."
    ),
    "save_steps": "Save every this many optimizer steps; a float below 1 is a fraction of the run.",
    "save_total_limit": (
        "Keep at most this many checkpoints in output_dir, deleting the oldest. With "
        "load_best_model_at_end the best one is always kept. Unset or 0: keep all."
    ),
    "save_safetensors": "Write weights as safetensors instead of torch.save pickles.",
    "save_on_each_node": (
        "In multi-node runs, save on every node, not only the main one. Only for nodes "
        "that do not share storage: the files have the same names."
    ),
    # --- devices -------------------------------------------------------------------------
    "no_cuda": "Deprecated: use use_cpu.",
    "use_cpu": "Run on the CPU even when an accelerator (CUDA, MPS) is available.",
    "use_mps_device": "Deprecated: the MPS device is selected automatically when available.",
    "seed": "Random seed set at the start of training (and before model init).",
    "data_seed": "Seed of the data samplers; defaults to seed.",
    "jit_mode_eval": "Trace the model with PyTorch JIT for inference.",
    "use_ipex": "Use Intel extension for PyTorch when installed.",
    "bf16": "Train in bfloat16 mixed precision.",
    "fp16": "Train in float16 mixed precision.",
    "fp16_opt_level": "Apex AMP level ('O0' to 'O3'), used only with the apex backend.",
    "half_precision_backend": "Mixed-precision backend: 'auto', 'apex' or 'cpu_amp'.",
    "bf16_full_eval": "Evaluate with the whole model in bfloat16 (faster, may change metrics).",
    "fp16_full_eval": "Evaluate with the whole model in float16 (faster, may change metrics).",
    "tf32": "Allow TF32 matrix multiplications on Ampere and newer GPUs (None: torch default).",
    "local_rank": "Local rank of this process; launchers set it (from LOCAL_RANK) for you.",
    "ddp_backend": "torch.distributed backend: 'nccl', 'gloo', 'mpi', 'ccl', 'hccl', ...",
    "tpu_num_cores": "Number of TPU cores (set by the TPU launcher).",
    "tpu_metrics_debug": "Deprecated: use debug='tpu_metrics_debug'.",
    "debug": (
        "Space-separated debug features: 'underflow_overflow' (detect inf/nan in "
        "activations and weights), 'tpu_metrics_debug' (print TPU metrics)."
    ),
    # --- data ----------------------------------------------------------------------------
    "dataloader_drop_last": "Drop the last incomplete batch of each dataloader.",
    "eval_steps": (
        "Evaluate every this many optimizer steps with the 'steps' strategy; a float below "
        "1 is a fraction of the run. Defaults to logging_steps."
    ),
    "dataloader_num_workers": "Worker processes per dataloader; 0 loads data in the main process.",
    "past_index": (
        "Index of the model output that holds past hidden states (mems), fed back at the "
        "next step. -1 disables it."
    ),
    "run_name": "Name of the run for reporters (wandb, mlflow, ...). Defaults to output_dir.",
    "disable_tqdm": "Hide progress bars. Default: hidden when the log level is above warning.",
    "remove_unused_columns": "Drop dataset columns the model's forward does not accept.",
    "label_names": "Names of the input keys that hold labels. Default: the model's usual ones.",
    "load_best_model_at_end": (
        "Load the best checkpoint (by metric_for_best_model) at the end of training. The "
        "save and evaluation strategies must match, and save_steps must be a multiple of "
        "eval_steps."
    ),
    "metric_for_best_model": (
        "Metric that decides the best model, e.g. 'loss' or 'accuracy' ('eval_' prefix "
        "optional). Defaults to 'loss' when a best model is tracked."
    ),
    "greater_is_better": (
        "Whether a higher metric_for_best_model is better. Default: False when the metric "
        "name ends in 'loss', True otherwise."
    ),
    "ignore_data_skip": (
        "On resume, do not fast-forward the data to where the checkpoint stopped: faster, "
        "but the run no longer matches an uninterrupted one."
    ),
    # --- sharding ------------------------------------------------------------------------
    "sharded_ddp": "Removed (FairScale). Use fsdp instead.",
    "fsdp": (
        "Fully Sharded Data Parallel options, space separated: one of 'full_shard', "
        "'shard_grad_op', 'no_shard', 'hybrid_shard', 'hybrid_shard_zero2', plus "
        "'offload' and/or 'auto_wrap'. Alone (--fsdp, or fsdp=True) it means "
        "'full_shard auto_wrap', changed by the fsdp_config keys reshard_after_forward, "
        "cpu_offload and auto_wrap_policy."
    ),
    "fsdp_min_num_params": "Deprecated: use fsdp_config={'min_num_params': ...}.",
    "fsdp_config": (
        "FSDP settings: a dict, a JSON string, or the path of a JSON file. Keys may carry "
        "an 'fsdp_' prefix."
    ),
    "fsdp_transformer_layer_cls_to_wrap": (
        "Deprecated: use fsdp_config={'transformer_layer_cls_to_wrap': [...]}."
    ),
    "deepspeed": "DeepSpeed config: the path of a JSON file, a JSON string, or a dict.",
    "label_smoothing_factor": "Label smoothing epsilon, in [0, 1); 0 disables it.",
    "optim": "Optimizer name, e.g. 'adamw_torch', 'adamw_torch_fused', 'adafactor', 'sgd'.",
    "optim_args": "Extra optimizer arguments as 'key=value,key=value'.",
    "adafactor": "Deprecated: use optim='adafactor'.",
    "group_by_length": "Batch samples of similar length together to reduce padding.",
    "length_column_name": "Dataset column with precomputed lengths for group_by_length.",
    "report_to": (
        "Reporters to send logs to, e.g. 'tensorboard', 'wandb'; 'all' for every installed "
        "one; 'none' or unset for none."
    ),
    # --- DDP -----------------------------------------------------------------------------
    "ddp_find_unused_parameters": "find_unused_parameters passed to DistributedDataParallel.",
    "ddp_bucket_cap_mb": "bucket_cap_mb passed to DistributedDataParallel.",
    "ddp_broadcast_buffers": "broadcast_buffers passed to DistributedDataParallel.",
    "dataloader_pin_memory": "Pin host memory in dataloaders for faster copies to the GPU.",
    "skip_memory_metrics": "Do not add memory-usage reports to the metrics (measuring is slow).",
    "use_legacy_prediction_loop": "Use the older prediction loop in evaluate and predict.",
    # --- Hub -----------------------------------------------------------------------------
    "push_to_hub": "Upload the model to the Hugging Face Hub on each save.",
    "resume_from_checkpoint": (
        "Checkpoint folder to resume from. Scripts read this; pass it to Trainer.train."
    ),
    "hub_model_id": "Hub repository to push to, as 'user/name' or 'organization/name'.",
    "hub_strategy": "What to push, when: 'end', 'every_save', 'checkpoint', 'all_checkpoints'.",
    "hub_token": "Token for pushing to the Hub; never serialised or printed.",
    "_resolved_spellings": (
        "Internal: what each pair of spellings of one setting held in the arguments this "
        "copy was made from; set by TrainingArguments, not by hand."
    ),
    "hub_private_repo": (
        "Create the Hub repository as private; None leaves it to the organisation's default."
    ),
    "hub_always_push": "Push even while the previous upload is still running.",
    "gradient_checkpointing": "Recompute activations in backward to save memory.",
    "include_inputs_for_metrics": "Same as include_for_metrics=['inputs'].",
    "fp16_backend": "Deprecated: use half_precision_backend.",
    "push_to_hub_model_id": "Deprecated: use hub_model_id.",
    "push_to_hub_organization": "Deprecated: use hub_model_id='organization/name'.",
    "push_to_hub_token": "Deprecated: use hub_token.",
    "mp_parameters": "SageMaker model-parallel parameters (SageMaker launcher only).",
    "auto_find_batch_size": (
        "Retry with 90 percent of the batch size each time a step runs out of memory."
    ),
    "full_determinism": (
        "Make training reproducible with deterministic algorithms (slower); affects "
        "distributed runs too."
    ),
    "torchdynamo": "Deprecated: use torch_compile_backend.",
    "ray_scope": (
        "Which reported results Ray Tune compares trials on: 'last', 'all', 'last-5-avg', "
        "'last-10-avg'."
    ),
    "ddp_timeout": "Seconds before a collective operation times out in distributed runs.",
    "torch_compile": "Compile the model with torch.compile.",
    "torch_compile_backend": "torch.compile backend; setting it turns torch_compile on.",
    "torch_compile_mode": "torch.compile mode; setting it turns torch_compile on.",
    "dispatch_batches": "Deprecated: use accelerator_config={'dispatch_batches': ...}.",
    "include_tokens_per_second": "Add the number of tokens per second to speed metrics.",
    # --- later upstream additions ---------------------------------------------------------
    "eval_strategy": (
        "When to evaluate: 'no', 'steps' or 'epoch'. Newer spelling of evaluation_strategy; "
        "unset means 'use evaluation_strategy'."
    ),
    "eval_on_start": "Evaluate once before training starts (a quick check of the eval code).",
    "batch_eval_metrics": (
        "Call compute_metrics after every evaluation batch (with compute_result=True on "
        "the last) instead of once on all predictions, to save memory."
    ),
    "eval_do_concat_batches": (
        "Concatenate predictions across evaluation batches; False keeps a list per batch."
    ),
    "eval_use_gather_object": "Gather arbitrary (non-tensor) objects from all processes in eval.",
    "save_only_model": (
        "Save only the model in checkpoints, not optimizer, scheduler and RNG states. Such "
        "checkpoints cannot resume training."
    ),
    "restore_callback_states_from_checkpoint": (
        "On resume, also restore the state of stateful callbacks (e.g. early stopping)."
    ),
    "include_for_metrics": ("Extra items passed to compute_metrics: 'inputs' and/or 'loss'."),
    "include_num_input_tokens_seen": (
        "Track the number of input tokens seen during training. transformers 5's words are "
        "accepted too: 'no' (False), 'all' (True) and 'non_padding' (the attention mask's "
        "tokens only)."
    ),
    "average_tokens_across_devices": (
        "Normalise the loss by the token count summed over all processes, so that "
        "distributed and gradient-accumulated runs match a single large batch."
    ),
    "dataloader_prefetch_factor": (
        "Batches each dataloader worker loads ahead; needs dataloader_num_workers > 0."
    ),
    "dataloader_persistent_workers": "Keep dataloader workers alive between epochs.",
    "lr_scheduler_kwargs": "Extra scheduler arguments: a dict or a JSON string.",
    "gradient_checkpointing_kwargs": (
        "Arguments for gradient checkpointing (e.g. use_reentrant): a dict or a JSON string."
    ),
    "activation_checkpointing": "Same as gradient_checkpointing (its transformers 5 name).",
    "activation_checkpointing_kwargs": (
        "Same as gradient_checkpointing_kwargs (its transformers 5 name)."
    ),
    "neftune_noise_alpha": "NEFTune noise scale for embeddings during training; unset disables.",
    "optim_target_modules": (
        "Module names (or a regex) GaLore-style optimizers target; accepted for "
        "compatibility, as this trainer does not run those optimizers."
    ),
    "torch_empty_cache_steps": (
        "Empty the accelerator's cache every this many steps (lower peak memory, slower)."
    ),
    "accelerator_config": (
        "Accelerate settings (split_batches, dispatch_batches, even_batches, "
        "use_seedable_sampler, ...): a dict, a JSON string, or the path of a JSON file."
    ),
    "split_batches": "Deprecated: use accelerator_config={'split_batches': ...}.",
    "hub_revision": "Branch of the Hub repository to push to.",
    "ddp_static_graph": "static_graph passed to DistributedDataParallel.",
    # --- transformers 5 fields (see _transformers5) ----------------------------------------
    "use_liger_kernel": (
        "transformers 5: patch the model with Liger kernels. Not implemented here: True is "
        "refused; apply the kernels to the model yourself."
    ),
    "liger_kernel_config": "transformers 5: options for the Liger kernels (see use_liger_kernel).",
    "use_cache": (
        "The value Trainer() sets as model.config.use_cache (as transformers 5 does): off "
        "for training by default, since a generation cache only costs memory there and "
        "hides packed sequences' boundaries from the attention masks."
    ),
    "project": "transformers 5: the project name trackers group runs under.",
    "trackio_space_id": "transformers 5: the Hugging Face Space that Trackio logs to.",
    "trackio_bucket_id": "transformers 5: the storage bucket Trackio uses.",
    "trackio_static_space_id": "transformers 5: the static Space Trackio publishes to.",
    "enable_jit_checkpoint": (
        "transformers 5: when the process receives SIGTERM, finish the current optimizer "
        "step, write a checkpoint and stop training."
    ),
    "parallelism_config": (
        "transformers 5: accelerate's ParallelismConfig (tensor/context parallel). Not "
        "implemented here: anything but None is refused."
    ),
    "dataloader_multiprocessing_context": (
        "Start method of the data-loader worker processes: fork, spawn or forkserver."
    ),
    "dataloader_in_order": (
        "Whether data-loader workers return batches in order (torch DataLoader in_order)."
    ),
    "train_sampling_strategy": (
        "transformers 5: the order of training samples. 'random' (shuffle), 'sequential' "
        "(the dataset's order) or 'group_by_length' (same as group_by_length=True); "
        "'batch_rebalance' is not implemented here and is refused."
    ),
    # --- Seq2SeqTrainingArguments ---------------------------------------------------------
    "sortish_sampler": "Sample training batches roughly sorted by length (less padding).",
    "predict_with_generate": "Compute generative metrics (ROUGE, BLEU) by calling generate.",
    "generation_max_length": (
        "max_length for generate during evaluation; defaults to the generation config's."
    ),
    "generation_num_beams": (
        "num_beams for generate during evaluation; defaults to the generation config's."
    ),
    "generation_config": (
        "Generation settings: a model id or folder to load them from, a dict, or a "
        "GenerationConfig-like object."
    ),
}


def help_for(name: str, **extra: Any) -> dict[str, Any]:
    """The ``metadata`` mapping of field ``name``: its help text plus ``extra`` entries.

    Raises:
        KeyError: ``name`` has no help text (a new field must get one).
    """
    return {"help": HELP[name], **extra}
