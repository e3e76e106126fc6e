"""The runtime for DeepSpeed ZeRO (stages 0-3), calling ``deepspeed.initialize`` directly.

accelerate's DeepSpeed path needs transformers, so this runtime builds the engine itself.
It extends the DDP runtime for what DeepSpeed leaves to the caller (joining the launcher's
processes, sharding data loaders, gathering evaluation results) and hands DeepSpeed what
it owns: precision, gradient reduction and partitioning, clipping, the optimizer step and
checkpoints.

How the loop's contract maps onto the engine:

* :meth:`DeepSpeedRuntime.prepare_training` builds the engine from the model, the
  optimizer (the config's ``optimizer`` section, else the Trainer's) and fills the
  config's remaining ``"auto"`` entries. The scheduler (the config's ``scheduler``
  section, else the Trainer's) is built on the engine's optimizer but not given to the
  engine: the loop steps it after each applied optimizer step, and checkpoints it itself.
* The loop already divides the loss for gradient accumulation (or normalises it by item
  counts), so ``backward`` calls ``engine.backward(loss, scale_wrt_gas=False)``.
* Accumulation windows are the loop's: :meth:`~DeepSpeedRuntime.no_sync` marks the
  micro-steps inside it as not being a boundary, every other backward is one, and
  ``optimizer_step`` calls ``engine.step()`` once per window. A short window at the end of
  an epoch therefore steps like a full one.
* Clipping happens inside ``engine.step()`` (``gradient_clipping``, filled from
  ``max_grad_norm``). :meth:`~DeepSpeedRuntime.clip_grad_norm` returns a tensor that
  ``optimizer_step`` fills with the norm DeepSpeed computed (the pre-clip global norm), so
  it holds the step's norm once the step ran, which is when the loop logs it.
* Evaluation before training under ZeRO-3 (a model partitioned by ``zero.Init``, or one
  still whole, which the engine partitions) goes through an inference-only engine (the
  config without optimizer and scheduler, ``_deepspeed_inference``), released before
  the training engine is built. It runs in the precision ``*_full_eval`` ask for; the
  training engine in that of ``fp16`` / ``bf16`` (fp32 without them, as the reference).
* Checkpoints are DeepSpeed's own (``checkpoint_format == "sharded"``): every process
  writes its partition with ``engine.save_checkpoint``; ``state_dict`` gathers full
  weights (ZeRO-3: consolidated on the main process, also before any engine exists) for
  ``save_model`` and for the weights the loop writes beside DeepSpeed's files, unless a
  ZeRO-3 config turns ``stage3_gather_16bit_weights_on_model_save`` off
  (:attr:`~DeepSpeedRuntime.gathers_full_weights_on_save`). A checkpoint
  written by another number of processes is loaded through DeepSpeed's universal
  checkpoint format (``_deepspeed_universal``). An adapter model's (PEFT) checkpoints
  leave its frozen base weights out and load back without them (``_adapter_models``).

On the CPU, nothing may compile a C++ extension (it takes minutes): DeepSpeed's
shared-memory all-reduce is turned off (gloo is used), Adam/AdamW config sections use
torch's implementation (``torch_adam``), optimizers that only exist as compiled kernels are
refused, and ZeRO-Offload to the CPU runs with that torch optimizer (NVMe offload is dropped).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Literal

import torch
from torch import nn

from trainer_dist._adapter_models import load_module_state, trains_adapters
from trainer_dist._batches import DeviceDataLoader
from trainer_dist._collectives import apply_nested
from trainer_dist._ddp import DistributedRuntime
from trainer_dist._deepspeed_config import ArgumentValues, DeepSpeedConfig, TrainingFacts
from trainer_dist._deepspeed_inference import (
    build_inference_engine,
    cast_partitions,
    gather_partitioned_state_dict,
    inference_config,
    release_inference_engine,
    warn_if_partitions_stay_uncast,
)
from trainer_dist._deepspeed_process import prepare_deepspeed_process
from trainer_dist._deepspeed_universal import (
    ZeroCheckpointLayout,
    check_universal_optimizer,
    choose_load_path,
    load_universal,
    read_zero_layout,
    universal_copy,
)
from trainer_dist._environment import launched_world_size
from trainer_dist._models import can_move, unwrap_model
from trainer_dist._precision import PlainSteps
from trainer_dist._single import _NULL_CONTEXT

logger = logging.getLogger(__name__)

_PARTITIONED_NEEDS_TRAINING_ENGINE = (
    "prepare_model(training=True) was given a model whose parameters DeepSpeed ZeRO-3 "
    "partitioned (zero.Init, while from_pretrained built it). Only a DeepSpeed training "
    "engine can train it, and that engine needs the optimizer: call prepare_training() "
    "(Trainer.train() does), or prepare_model(training=False) to evaluate it."
)
_NO_FULL_OPTIMIZER_STATE = (
    "DeepSpeed keeps the optimizer state partitioned across processes, so there is no single "
    "full optimizer state dict. Checkpoints of this runtime use checkpoint_format='sharded': "
    "call save_sharded_state / load_sharded_state."
)


def model_hidden_size(model: Any) -> int | None:
    """The hidden size a transformers model's config declares (``hidden_size``, or the
    largest of ``hidden_sizes``); ``None`` for models without one."""
    config = getattr(model, "config", None)
    size = getattr(config, "hidden_size", None)
    if isinstance(size, int) and size > 0:
        return size
    sizes = getattr(config, "hidden_sizes", None)
    if isinstance(sizes, (list, tuple)) and sizes and all(isinstance(s, int) for s in sizes):
        return max(sizes)
    return None


def is_zero3_partitioned(model: Any) -> bool:
    """Whether ``model``'s parameters were partitioned by ZeRO-3 (``deepspeed.zero.Init``
    while ``from_pretrained`` built it, or an engine): each then holds an empty local
    tensor and its partition in ``ds_tensor``. Reads attributes only (no deepspeed)."""
    parameters = getattr(model, "parameters", None)
    if not callable(parameters):
        return False
    return any(hasattr(parameter, "ds_id") for parameter in parameters())


def is_deepspeed_engine(model: Any) -> bool:
    """Whether ``model`` is a DeepSpeed engine (without importing deepspeed)."""
    return any(
        cls.__name__ == "DeepSpeedEngine" and cls.__module__.startswith("deepspeed.")
        for cls in type(model).__mro__
    )


class DeepSpeedRuntime(DistributedRuntime):
    """:class:`trainer_core.Runtime` that trains through a DeepSpeed engine (ZeRO 0-3).

    Args:
        config: the DeepSpeed config: a :class:`DeepSpeedConfig`, a dict, JSON text or
            the path of a JSON file. ``"auto"`` entries are filled from ``values``.
        values: the training arguments the config repeats (see :class:`ArgumentValues`);
            defaults to the reference's argument defaults with the launcher's world size.
        use_cpu: train on the CPU (refused when DeepSpeed would pick a GPU).
        backend: the ``torch.distributed`` backend (``ddp_backend``).
        timeout_seconds: collective timeout (``ddp_timeout``).
        **precision: validation options shared with the other runtimes
            (``half_precision_backend``, ``fp16_full_eval``, ``bf16_full_eval``, ``tf32``);
            ``mixed_precision`` is taken from the resolved config instead.

    Raises:
        trainer_core.MissingExtraError: deepspeed is not installed.
        DeepSpeedConfigMismatchError: the config contradicts ``values``.
        ValueError: an option DeepSpeed cannot honour here (``torch_compile``, fp16 on
            the CPU, ``use_cpu`` on a GPU machine, a config optimizer that needs a
            compiled kernel on the CPU).
    """

    def __init__(
        self,
        config: DeepSpeedConfig | Mapping[str, Any] | str | os.PathLike[str],
        *,
        values: ArgumentValues | None = None,
        use_cpu: bool = False,
        backend: str | None = None,
        timeout_seconds: int | None = None,
        **precision: Any,
    ) -> None:
        precision.pop("mixed_precision", None)
        self._engine_compile = _compile_settings(precision)
        values = values or ArgumentValues(world_size=launched_world_size())
        source = config if isinstance(config, DeepSpeedConfig) else DeepSpeedConfig(config)
        self._config = source.resolve_arguments(values)  # a bad config fails before imports
        self._config_before_training = self._config
        self._values = values
        on_cpu = prepare_deepspeed_process(self._config, use_cpu=use_cpu)
        super().__init__(
            use_cpu=use_cpu,
            backend=backend,
            timeout_seconds=timeout_seconds,
            mixed_precision=self._config.mixed_precision,
            **precision,
        )
        self._steps = PlainSteps()  # DeepSpeed scales fp16 losses itself
        self._on_cpu = on_cpu
        self._engine: Any = None
        self._inference_engine: Any = None  # ZeRO-3 evaluation before training
        self._scheduler_in_use: Any = None
        self._grad_norm = torch.zeros((), dtype=torch.float32, device=self._device)
        self._uncast_warned = False

    # ----------------------------------------------------------------- facts
    @property
    def config(self) -> DeepSpeedConfig:
        """The config with the argument-decided ``"auto"`` entries filled; once training
        started, the config the engine was built from."""
        return self._config

    @property
    def engine(self) -> Any:
        """The ``DeepSpeedEngine`` built by :meth:`prepare_training` (``None`` before)."""
        return self._engine

    @property
    def inference_engine(self) -> Any:
        """The inference-only engine that evaluates a ZeRO-3 partitioned model before any
        training (``None`` when there is none, and again once training released it)."""
        return self._inference_engine

    @property
    def zero_stage(self) -> int:
        """The ZeRO stage of the config (0-3)."""
        return self._config.zero_stage

    # ----------------------------------------------------------------------- prepare
    def prepare_training(
        self,
        model: Any,
        *,
        create_optimizer: Callable[[], Any],
        create_scheduler: Callable[[Any], Any],
        num_training_steps: int,
    ) -> tuple[Any, Any, Any]:
        """Build the engine; return ``(engine, engine's optimizer, scheduler)``.

        ``create_optimizer`` is called only when the config has no ``optimizer`` section,
        ``create_scheduler`` only when it has no ``scheduler`` section (then on the
        engine's optimizer).

        Raises:
            ValueError: the scheduler the Trainer already holds drives another optimizer
                than the one the config defines, or an ``"auto"`` entry cannot be filled.
        """
        module = self.unwrap_model(model)  # the inference engine's model too
        facts = TrainingFacts(model_hidden_size(module), num_training_steps)
        # The step count fills "auto" entries anew for each run, so keep the unfilled ones.
        self._config = self._config_before_training.resolve_training(self._values, facts)
        if self._engine is not None and self._engine.module is module:
            # A further train() of the same model keeps the engine and its optimizer
            # state; the schedule is planned afresh for this run's steps, as without it.
            self._scheduler_in_use = self._scheduler_for(self._engine, None, create_scheduler)
            return self._engine, self._engine.optimizer, self._scheduler_in_use
        self._release_inference_engine()  # its hooks must not gather beside the engine's
        if is_zero3_partitioned(module):
            _check_partitioned_stage(self._config.zero_stage)  # placed by zero.Init already
        elif can_move(module):
            module = module.to(self._device)
        optimizer = None if self._config.has_optimizer else create_optimizer()
        engine = self._initialize(module, optimizer)
        scheduler = self._scheduler_for(engine, optimizer, create_scheduler)
        self._engine, self._scheduler_in_use = engine, scheduler
        return engine, engine.optimizer, scheduler

    def _scheduler_for(
        self, engine: Any, client_optimizer: Any, create_scheduler: Callable[[Any], Any]
    ) -> Any:
        """The config's scheduler, or else the Trainer's, on the engine's optimizer."""
        base_optimizer = getattr(engine, "basic_optimizer", None) or engine.optimizer
        if self._config.has_scheduler:
            return config_scheduler(self._config.get("scheduler"), base_optimizer)
        scheduler = create_scheduler(base_optimizer)
        optimizers = (base_optimizer, engine.optimizer, client_optimizer)
        _check_scheduler_optimizer(scheduler, optimizers)
        return scheduler

    def _initialize(self, module: nn.Module, optimizer: Any) -> Any:
        import deepspeed

        settings = engine_settings(self._config, on_cpu=self._on_cpu, client_optimizer=optimizer)
        parameters = None
        if optimizer is None:
            parameters = [p for p in module.parameters() if p.requires_grad]
        engine, *_ = deepspeed.initialize(
            model=module, optimizer=optimizer, model_parameters=parameters, config=settings
        )
        engine.set_gradient_accumulation_boundary(True)
        _accept_set_to_none(engine)
        if self._engine_compile is not None:
            backend, kwargs = self._engine_compile
            engine.compile(backend=backend, compile_kwargs=kwargs)
        return engine

    def prepare_model(self, model: nn.Module, *, training: bool) -> nn.Module:
        """The engine when ``model`` is the one it trains; else, for evaluation, an
        inference-only engine under ZeRO-3, or ``model`` on the device under ZeRO-0/1/2.

        The training engine is built by :meth:`prepare_training`, which needs the
        optimizer too. A model that ``zero.Init`` partitioned cannot run forward on its
        own, so evaluating it before training builds (once per model) an engine without
        optimizer that gathers the weights for each forward; :meth:`prepare_training`
        releases it before building the training engine. A model still whole under a
        ZeRO-3 config goes through that engine too, as in the reference: the engine
        partitions it, so a model too large for one device is evaluated in shares, and
        it stays partitioned for the training that may follow. Under ZeRO-0/1/2 every
        process holds the whole model anyway, and it is evaluated as it is (the reference
        refuses to evaluate before training there).

        Raises:
            NotImplementedError: ``training=True`` for a partitioned model (use
                :meth:`prepare_training`).
            ValueError: the model is partitioned but the config is not ZeRO-3.
        """
        engine = self._engine_of(model)
        if engine is not None:
            if not training and not self._uncast_warned:  # once a run, not every evaluation
                self._uncast_warned = warn_if_partitions_stay_uncast(self._config, self._values)
            return engine
        module = self.unwrap_model(model)
        partitioned = is_zero3_partitioned(module)
        if partitioned and training:
            raise NotImplementedError(_PARTITIONED_NEEDS_TRAINING_ENGINE)
        if partitioned or (self._config.zero_stage == 3 and not training):
            return self._inference_engine_for(module)
        if can_move(model):
            model = model.to(self._device)
        return model

    def _inference_engine_for(self, module: nn.Module) -> Any:
        _check_partitioned_stage(self._config.zero_stage)
        current = self._inference_engine
        if current is not None and current.module is module:
            return current
        self._release_inference_engine()  # another model's: one engine gathers at a time
        config = inference_config(self._config, self._values, hidden_size=model_hidden_size(module))
        dtype = _dtype_of(config.mixed_precision)
        if dtype is not None and is_zero3_partitioned(module):
            cast_partitions(module, dtype)  # DeepSpeed takes them to be in its dtype already
        settings = engine_settings(config, on_cpu=self._on_cpu, client_optimizer=None)
        self._inference_engine = build_inference_engine(module, settings)
        return self._inference_engine

    def _release_inference_engine(self) -> None:
        if self._inference_engine is not None:
            release_inference_engine(self._inference_engine)
            self._inference_engine = None

    def prepare_dataloader(self, dataloader: Any) -> DeviceDataLoader:
        """Shard as DDP does; under fp16/bf16 also cast floating-point tensors of each
        batch to that dtype (DeepSpeed runs the model itself in half precision)."""
        if isinstance(dataloader, _HalfPrecisionBatches):
            return dataloader
        prepared = super().prepare_dataloader(dataloader)
        dtype = _dtype_of(self._config.mixed_precision)
        return prepared if dtype is None else _HalfPrecisionBatches(prepared, dtype)

    def unwrap_model(self, model: Any) -> Any:
        """The user's module inside the engine (and DDP / compile wrappers)."""
        if is_deepspeed_engine(model):
            model = model.module
        return unwrap_model(model)

    def _engine_of(self, model: Any) -> Any:
        return self._wrapping(self._engine, model)

    def _any_engine_of(self, model: Any) -> Any:
        """The training engine of ``model``, else its inference engine (for gathering)."""
        engine = self._engine_of(model)
        return engine if engine is not None else self._wrapping(self._inference_engine, model)

    def _wrapping(self, engine: Any, model: Any) -> Any:
        if engine is None:
            return None
        if model is engine or self.unwrap_model(model) is engine.module:
            return engine
        return None

    # ------------------------------------------------------------ per-step hot path
    def autocast(self, *, enabled: bool = True) -> AbstractContextManager[Any]:
        """No autocast once an engine exists (it runs the model in its precision, the
        inference engine too); before that (evaluation of a plain module), the usual
        autocast."""
        if self._engine is not None or self._inference_engine is not None:
            return _NULL_CONTEXT
        return super().autocast(enabled=enabled)

    def backward(self, loss: torch.Tensor) -> None:
        """``engine.backward`` without a second division by the accumulation steps."""
        if self._engine is None:
            loss.backward()
            return
        self._engine.backward(loss, scale_wrt_gas=False)

    def no_sync(self, model: Any) -> AbstractContextManager[None]:
        """Mark the micro-steps inside the block as not ending an accumulation window.

        ZeRO-0/1 then skip the gradient all-reduce; ZeRO-2/3 still reduce-scatter each
        micro-step (their partitioning needs it) and apply the update at the boundary.
        """
        engine = self._engine_of(model)
        if engine is None:
            return _NULL_CONTEXT
        return _inside_window(engine)

    def clip_grad_norm(self, parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
        """Return the tensor that receives this step's gradient norm.

        DeepSpeed clips inside ``engine.step()`` (``gradient_clipping``, which equals
        ``max_grad_norm`` after "auto" resolution), where ZeRO's partitioned gradients
        are. The returned tensor is filled with the pre-clip global norm when
        :meth:`optimizer_step` runs; an fp32 run without ZeRO, whose optimizer does not
        report a norm, gets it computed here from the (already reduced) gradients.
        """
        engine = self._engine
        if engine is not None and not hasattr(engine.optimizer, "_global_grad_norm"):
            grads = [p.grad for p in parameters if p.grad is not None]
            if grads:
                self._grad_norm.copy_(nn.utils.get_total_norm(grads))
        return self._grad_norm

    def optimizer_step(self, optimizer: Any) -> bool:
        """``engine.step()`` (clip, step, zero the gradients); ``False`` when fp16 loss
        scaling skipped the step."""
        engine = self._engine
        if engine is None:
            return super().optimizer_step(optimizer)
        engine.step()
        norm = engine.get_global_grad_norm()
        if norm is not None:
            self._grad_norm.copy_(torch.as_tensor(norm))
        return bool(engine.was_step_applied())

    # ----------------------------------------------------------------- state
    @property
    def shards_parameters(self) -> bool:
        """``True`` under ZeRO-3, where each process holds a partition of every weight."""
        return self._config.zero_stage == 3

    @property
    def checkpoint_format(self) -> Literal["full", "sharded"]:
        """Always ``"sharded"``: DeepSpeed's checkpoints (every process writes its part)."""
        return "sharded"

    @property
    def gathers_full_weights_on_save(self) -> bool:
        """Whether saving the model gathers its full weights (``save_model`` and the
        weights written into each ``checkpoint-<N>`` beside DeepSpeed's own files).

        Always under ZeRO-0/1/2, where every process holds them. Under ZeRO-3 only when
        the config's ``stage3_gather_16bit_weights_on_model_save`` is true (DeepSpeed's
        default is false: consolidating a model too large for one process is what
        ZeRO-3 avoids); otherwise the model is saved as DeepSpeed's checkpoint, from which
        :func:`export_deepspeed_checkpoint` (``zero_to_fp32``) recovers the weights.
        """
        return self._config.zero_stage != 3 or self._config.gathers_16bit_weights_on_save

    def state_dict(self, model: Any) -> dict[str, Any]:
        """Full weights: ZeRO-3 gathers them on the main process (others get ``{}``),
        through the training engine or, before training, the inference engine, or else
        (a model ``zero.Init`` partitioned) parameter by parameter; otherwise every
        process holds them. 16-bit under fp16/bf16, else 32-bit.

        Every process must call it under ZeRO-3 (gathering is a collective). Asked
        explicitly, it gathers even when ``stage3_gather_16bit_weights_on_model_save``
        is false; saving consults :attr:`gathers_full_weights_on_save` first.
        """
        module = self.unwrap_model(model)
        engine = self._any_engine_of(model)
        if self._config.zero_stage != 3 or not is_zero3_partitioned(module):
            return module.state_dict()
        if engine is None:
            return gather_partitioned_state_dict(module, keep=self.is_main_process)
        state = engine._zero3_consolidated_16bit_state_dict()  # DeepSpeed's gatherer
        return dict(state) if state is not None else {}

    def load_state_dict(self, model: Any, state: dict[str, Any]) -> None:
        """Load full weights (every process passes them) into the model and the
        optimizer's master copy (the partitions of the inference engine's model before
        training)."""
        self._load_weights(model, state, strict=True)

    def _load_weights(self, model: Any, state: dict[str, Any], *, strict: bool) -> None:
        """:meth:`load_state_dict`; ``strict=False`` lets ``state`` lack the frozen
        parameters of an adapter model (never others)."""
        engine = self._any_engine_of(model)
        module = self.unwrap_model(model)
        if engine is None:
            load_module_state(module, state, strict=strict)
            return
        if self._config.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=0):
                if self.is_main_process:
                    load_module_state(module, state, strict=strict)
        else:
            load_module_state(module, state, strict=strict)
        refresh = getattr(engine.optimizer, "refresh_fp32_params", None)
        if callable(refresh):
            refresh()

    def optimizer_state_dict(self, model: Any, optimizer: Any) -> dict[str, Any]:
        """Not available: the optimizer state lives in DeepSpeed's partitions.

        Raises:
            NotImplementedError: always; use :meth:`save_sharded_state`.
        """
        raise NotImplementedError(_NO_FULL_OPTIMIZER_STATE)

    def load_optimizer_state_dict(self, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
        """Not available (see :meth:`optimizer_state_dict`).

        Raises:
            NotImplementedError: always; use :meth:`load_sharded_state`.
        """
        raise NotImplementedError(_NO_FULL_OPTIMIZER_STATE)

    def save_sharded_state(self, directory: str, model: Any, optimizer: Any = None) -> None:
        """``engine.save_checkpoint(directory)``: every process calls it and writes its part.

        The layout is DeepSpeed's (``global_step<N>/`` with model and optimizer
        partitions, ``latest``, ``zero_to_fp32.py``), as the reference writes it inside
        ``checkpoint-<N>``. DeepSpeed always writes the optimizer partitions. An adapter
        model's frozen parameters are left out (``exclude_frozen_parameters``, as the
        reference does for PEFT models): they would be another copy of the base model.

        Raises:
            RuntimeError: no engine trains ``model`` yet.
        """
        engine = self._require_engine(model)
        engine.save_checkpoint(directory, exclude_frozen_parameters=trains_adapters(engine.module))

    def load_sharded_state(self, directory: str, model: Any, optimizer: Any = None) -> None:
        """Load a checkpoint :meth:`save_sharded_state` wrote, on any number of processes
        (collective); optimizer partitions only when ``optimizer`` is given.

        Written by as many processes as now run (and the same kind of ZeRO partitions):
        ``engine.load_checkpoint`` directly. Written by another number of processes: with
        ``optimizer``, the main process converts it to DeepSpeed's universal format in a
        temporary folder beside ``directory`` (removed afterwards; ``directory`` is only
        read) and every process loads its share of weights and Adam moments from there;
        without, the full fp32 weights are merged from the partitions and loaded.

        Raises:
            RuntimeError: no engine trains ``model`` yet, or the conversion failed.
            FileNotFoundError: ``directory`` holds no DeepSpeed checkpoint.
            ValueError: the optimizer state cannot move to this number of processes (an
                optimizer other than Adam/AdamW, or ZeRO-3 partitions into ZeRO-1/2 or
                the reverse); raised before anything is loaded or written.
        """
        engine = self._require_engine(model)
        strict = not trains_adapters(engine.module)  # an adapter model's lack frozen weights
        layout = read_zero_layout(directory)
        world_size = getattr(engine, "seq_dp_world_size", None) or engine.dp_world_size
        path = choose_load_path(
            layout,
            zero_stage=self.zero_stage,
            world_size=world_size,
            with_optimizer=optimizer is not None,
            directory=directory,
        )
        if path == "direct":
            _load_directly(
                engine, directory, layout.tag, with_optimizer=optimizer is not None, strict=strict
            )
        elif path == "merged":
            from trainer_dist._deepspeed_export import export_deepspeed_checkpoint

            state = export_deepspeed_checkpoint(directory, tag=layout.tag)
            self._load_weights(model, state, strict=strict)
        else:
            self._load_universal(engine, directory, layout, world_size, strict=strict)

    def _load_universal(
        self,
        engine: Any,
        directory: str,
        layout: ZeroCheckpointLayout,
        world_size: int,
        *,
        strict: bool,
    ) -> None:
        check_universal_optimizer(
            engine.basic_optimizer, layout, world_size=world_size, directory=directory
        )
        logger.info(
            "The DeepSpeed checkpoint %s was written by %d processes; loading it on %d "
            "through a universal copy.",
            directory,
            layout.world_size,
            world_size,
        )
        with universal_copy(directory, layout.tag, is_main_process=self.is_main_process) as root:
            load_universal(engine, root, layout.tag, strict=strict)

    def _require_engine(self, model: Any) -> Any:
        engine = self._engine_of(model)
        if engine is None:
            raise RuntimeError(
                f"No DeepSpeed engine trains this {type(model).__name__} yet: DeepSpeed "
                f"checkpoints are written and read by the engine, which prepare_training "
                f"builds. Call it (Trainer.train does) before saving or loading."
            )
        return engine

    def __repr__(self) -> str:
        return (
            f"DeepSpeedRuntime(zero_stage={self.zero_stage}, device={self._device}, "
            f"process={self.process_index}/{self.num_processes}, "
            f"mixed_precision={self._mixed_precision!r})"
        )


# ------------------------------------------------------------ engine settings
def engine_settings(
    config: DeepSpeedConfig, *, on_cpu: bool, client_optimizer: Any
) -> dict[str, Any]:
    """The dict ``deepspeed.initialize`` receives for ``config``.

    The ``scheduler`` section is removed (the runtime builds it; the loop steps it). With
    the Trainer's optimizer, ZeRO is told to accept it (``zero_allow_untested_optimizer``)
    unless the config says otherwise. On the CPU, Adam/AdamW sections use torch's
    implementation; offload to ``"cpu"`` is kept (DeepSpeed runs its offload path there,
    so CPU runs test it) with a torch optimizer allowed for it, as DeepSpeed's own CPU
    Adam would have to be compiled; offload to NVMe, which needs compiled I/O kernels,
    is dropped with a warning.
    """
    settings = config.to_dict()
    settings.pop("scheduler", None)
    if client_optimizer is not None:
        settings.setdefault("zero_allow_untested_optimizer", True)
    if on_cpu:
        _use_torch_adam(settings)
        _drop_nvme_offload(settings)
        if _offloads(settings):
            settings.setdefault("zero_force_ds_cpu_optimizer", False)
    return settings


def _use_torch_adam(settings: dict[str, Any]) -> None:
    section = settings.get("optimizer")
    if not isinstance(section, dict):
        return
    if str(section.get("type", "")).lower() in ("adam", "adamw"):
        params = section.setdefault("params", {})
        if "torch_adam" not in params:
            params["torch_adam"] = True
            logger.info("DeepSpeed on the CPU: the config's %s runs torch's.", section["type"])


_OFFLOAD_SECTIONS = ("offload_optimizer", "offload_param")


def _offloads(settings: Mapping[str, Any]) -> bool:
    zero = settings.get("zero_optimization")
    if not isinstance(zero, Mapping):
        return False
    if zero.get("cpu_offload") is True:  # DeepSpeed's older spelling of optimizer offload
        return True
    return any(
        isinstance(zero.get(key), Mapping) and zero[key].get("device", "none") != "none"
        for key in _OFFLOAD_SECTIONS
    )


def _drop_nvme_offload(settings: dict[str, Any]) -> None:
    zero = settings.get("zero_optimization")
    if not isinstance(zero, dict):
        return
    for key in _OFFLOAD_SECTIONS:
        section = zero.get(key)
        if isinstance(section, Mapping) and section.get("device") == "nvme":
            del zero[key]
            logger.warning(
                "DeepSpeed %s to NVMe is ignored on this CPU run: it needs DeepSpeed's "
                "compiled async I/O kernels.",
                key,
            )


def config_scheduler(section: Mapping[str, Any], optimizer: Any) -> Any:
    """The scheduler a config's ``scheduler`` section describes, on ``optimizer``.

    DeepSpeed's own schedules (``WarmupLR``, ``WarmupDecayLR``, ``WarmupCosineLR``,
    ``OneCycle``, ``LRRangeTest``) and any ``torch.optim.lr_scheduler`` class by name.

    Raises:
        ValueError: an unknown scheduler type.
    """
    from deepspeed.runtime import lr_schedules

    name = str(section.get("type", ""))
    params = dict(section.get("params") or {})
    if name in lr_schedules.VALID_LR_SCHEDULES:
        return getattr(lr_schedules, name)(optimizer, **params)
    torch_class = getattr(torch.optim.lr_scheduler, name, None)
    if isinstance(torch_class, type):
        return torch_class(optimizer, **params)
    raise ValueError(
        f"The DeepSpeed config's scheduler type {name!r} is unknown. Use one of "
        f"{list(lr_schedules.VALID_LR_SCHEDULES)} or a torch.optim.lr_scheduler class name, "
        f"or remove the scheduler section to use the Trainer's (lr_scheduler_type=)."
    )


def _check_scheduler_optimizer(scheduler: Any, optimizers: tuple[Any, ...]) -> None:
    driven = getattr(scheduler, "optimizer", None)
    if driven is not None and not any(driven is optimizer for optimizer in optimizers):
        raise ValueError(
            "The Trainer's learning-rate scheduler (passed through optimizers=(optimizer, "
            "scheduler)) drives another optimizer than the one the DeepSpeed config's "
            "'optimizer' section defines. Remove the config's optimizer section to train "
            "with your optimizer, or pass optimizers=(None, None)."
        )


def _accept_set_to_none(engine: Any) -> None:
    """Let ``engine.zero_grad(set_to_none=True)`` work as on any module.

    The loop clears gradients with ``model.zero_grad(set_to_none=True)``; the engine's
    ``zero_grad()`` takes no argument (and always sets them to ``None``). The instance
    gets a method that accepts and ignores it.
    """
    engine_zero_grad = type(engine).zero_grad

    def zero_grad(set_to_none: bool = True) -> None:
        engine_zero_grad(engine)

    engine.zero_grad = zero_grad


def _load_directly(
    engine: Any, directory: str, tag: str, *, with_optimizer: bool, strict: bool = True
) -> None:
    path, _ = engine.load_checkpoint(
        directory,
        tag=tag,
        load_optimizer_states=with_optimizer,
        load_lr_scheduler_states=False,
        load_module_strict=strict,
    )
    if path is None:
        raise FileNotFoundError(
            f"DeepSpeed found no checkpoint files for this process in {directory!r}/{tag}. "
            f"Pass a complete folder written by save_sharded_state."
        )


@contextlib.contextmanager
def _inside_window(engine: Any) -> Iterator[None]:
    engine.set_gradient_accumulation_boundary(False)
    try:
        yield
    finally:
        engine.set_gradient_accumulation_boundary(True)


# -------------------------------------------------------------- environment
def _compile_settings(precision: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``(backend, compile_kwargs)`` for ``engine.compile`` when ``torch_compile`` is asked
    for, else None; removes the compile options from ``precision``.

    The engine wraps the model, so the model is compiled through DeepSpeed's own
    ``engine.compile`` once the engine exists (as accelerate does), not by the base
    runtime before. The backend defaults to ``inductor``, as ``torch_compile`` does.
    """
    requested = precision.pop("torch_compile", False)
    backend = precision.pop("torch_compile_backend", None)
    mode = precision.pop("torch_compile_mode", None)
    if not requested:
        return None
    return backend or "inductor", ({"mode": mode} if mode else {})


def _check_partitioned_stage(stage: int) -> None:
    if stage != 3:
        raise ValueError(
            f"The model's parameters were partitioned by DeepSpeed ZeRO-3 (zero.Init, "
            f"because a ZeRO-3 config was registered when it was built), but this run's "
            f"DeepSpeed config has ZeRO stage {stage}. Load the model after building the "
            f"arguments of this run, or use the ZeRO-3 config for training too."
        )


# ------------------------------------------------------------------ batches
def _dtype_of(mixed_precision: str) -> torch.dtype | None:
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision)


def cast_floating(data: Any, dtype: torch.dtype) -> Any:
    """``data`` with every floating-point tensor (nested in mappings, lists and tuples)
    cast to ``dtype``; integer tensors (token ids, masks) and other values unchanged."""
    return apply_nested(data, lambda t: t.to(dtype) if t.is_floating_point() else t)


class _HalfPrecisionBatches(DeviceDataLoader):
    """A prepared loader whose floating-point tensors arrive in the engine's half dtype
    (as the reference's Trainer casts inputs under DeepSpeed fp16/bf16)."""

    def __init__(self, prepared: DeviceDataLoader, dtype: torch.dtype) -> None:
        super().__init__(prepared, prepared.device)
        self.dtype = dtype

    def __iter__(self) -> Iterator[Any]:
        dtype = self.dtype
        batches = iter(self.base_dataloader)  # made now: see DeviceDataLoader.__iter__
        return (cast_floating(batch, dtype) for batch in batches)
