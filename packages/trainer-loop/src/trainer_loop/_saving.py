"""Saving the model and ``checkpoint-<step>`` folders, through the checkpoint store.

The Trainer decides what a checkpoint holds and when one is due; the store (any
``trainer_core.CheckpointStore``, by default trainer-checkpoint's
``FolderCheckpointStore``) decides how it is written, found, rotated and read; the
runtime decides how model and optimizer state leave and re-enter the processes. This
module also keeps the best-metric bookkeeping of ``load_best_model_at_end`` /
``metric_for_best_model`` / ``greater_is_better``.

Model and optimizer state always pass through the runtime, on every process, because
with sharded parameters (FSDP, ZeRO) gathering and scattering them are collectives:

* ``runtime.checkpoint_format == "full"``: every process gathers ``runtime.state_dict``
  and ``runtime.optimizer_state_dict``; the writers (the main process, or each node's
  with ``save_on_each_node``) write them. On load every process reads the files and
  hands them to ``runtime.load_state_dict`` / ``load_optimizer_state_dict``.
* ``"sharded"``: every process writes its shards with ``runtime.save_sharded_state``
  into the folder the store is building (``save(sharded_writer=...)``), and loads them
  with ``runtime.load_sharded_state``. Whether a checkpoint is sharded is read from the
  checkpoint (``store.is_sharded``), so a sharded checkpoint also resumes on a runtime
  that saves full ones (one process, for instance), and the reverse.

``save_model`` and ``load_best_model_at_end`` use full weights in both formats.

DeepSpeed's checkpoints (a runtime with ``gathers_full_weights_on_save``) hold full weights
too, as the reference's ``checkpoint-<N>`` does: the gathered weights and the model's
config beside DeepSpeed's ``global_step<N>/`` (so ``from_pretrained`` reads the
checkpoint), while resuming still reads DeepSpeed's files. When the runtime does not
gather (ZeRO-3 without ``stage3_gather_16bit_weights_on_model_save``), checkpoints and
``save_model`` hold the config and DeepSpeed's files only, with a warning that names the
export. With ``save_only_model`` a DeepSpeed checkpoint holds the weights, the config and
the trainer state, no DeepSpeed state (unless the weights exist only as DeepSpeed's
files), and resuming from it is refused, as by the reference.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import torch

from trainer_core import (
    CheckpointContent,
    CheckpointStore,
    ExportableState,
    LoadedCheckpoint,
    best_metric_greater_is_better,
    best_metric_key,
)
from trainer_loop._inputs import accepts_argument
from trainer_loop._schedulers import steps_on_metrics
from trainer_loop._trainer_functions import save_state

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint"


def processing_class_to_save(trainer: Trainer) -> Any:
    """What is saved beside the weights: the processing class, else (as transformers 5
    does) the tokenizer of the data collator (``DataCollatorForLanguageModeling(tok)``
    without ``processing_class=``), so the saved folder loads with ``from_pretrained``."""
    if trainer.processing_class is not None:
        return trainer.processing_class
    tokenizer = getattr(trainer.data_collator, "tokenizer", None)
    return tokenizer if callable(getattr(tokenizer, "save_pretrained", None)) else None


def default_checkpoint_store(args: Any, runtime: Any) -> CheckpointStore:
    """trainer-checkpoint's folder store, configured from the arguments."""
    from trainer_checkpoint import FolderCheckpointStore

    return FolderCheckpointStore(
        safe_serialization=bool(getattr(args, "save_safetensors", True)),
        num_processes=runtime.num_processes,
    )


def export_callback_states(trainer: Trainer) -> dict[str, Any]:
    """``{class name: state}`` of the control and of every callback that can export one.

    Written with each checkpoint (as the reference does; its Trainer expects at least the
    ``TrainerControl`` entry when it resumes from our checkpoints). Two callbacks of one
    class are stored as a list, in order.
    """
    exported: dict[str, Any] = {}
    for callback in [*trainer.callback_handler.callbacks, trainer.control]:
        if not isinstance(callback, ExportableState):
            continue
        name, value = type(callback).__name__, callback.state()
        if name not in exported:
            exported[name] = value
        elif isinstance(exported[name], list):
            exported[name].append(value)
        else:
            exported[name] = [exported[name], value]
    return exported


def _full_weights_on_save(runtime: Any) -> bool | None:
    """The runtime's ``gathers_full_weights_on_save`` (DeepSpeed's); ``None`` for a
    runtime without it, whose sharded checkpoints hold shards only (FSDP) and whose
    ``save_model`` always gathers."""
    value = getattr(runtime, "gathers_full_weights_on_save", None)
    return None if value is None else bool(value)


def _note_weights_only(model: Any) -> None:
    """Log the reference's note (users grep for it) that a model without
    ``save_pretrained`` is saved as its weights alone, without a config."""
    if model is not None and not callable(getattr(model, "save_pretrained", None)):
        logger.info("Trainer.model is not a `PreTrainedModel`, only saving its state dict.")


def write_model_config(module: Any, folder: str) -> None:
    """Write the ``config.json`` (and ``generation_config.json``) of a transformers model
    into ``folder``, so that ``from_pretrained`` finds the architecture beside weights
    kept elsewhere (DeepSpeed's files); nothing for a module without a config."""
    config = getattr(module, "config", None)
    if not hasattr(config, "save_pretrained"):
        return
    os.makedirs(folder, exist_ok=True)
    _record_class_and_dtype(module, config)
    config.save_pretrained(folder)
    generation = getattr(module, "generation_config", None)
    can_generate = getattr(module, "can_generate", None)
    if hasattr(generation, "save_pretrained") and callable(can_generate) and can_generate():
        generation.save_pretrained(folder)


def _record_class_and_dtype(module: Any, config: Any) -> None:
    """Set what the model's own ``save_pretrained`` records in its config before writing
    it: the class to build (``architectures``, read by ``AutoModel`` and pipelines) and
    the weights' dtype. Written without the model's weights, the config would lack both."""
    config.architectures = [type(module).__name__.removeprefix("FSDP")]
    dtype = getattr(module, "dtype", None)
    if isinstance(dtype, torch.dtype):
        # transformers 5 names it ``dtype``; 4.x configs ``torch_dtype``.
        setattr(config, "dtype" if hasattr(config, "dtype") else "torch_dtype", str(dtype)[6:])


_NOT_GATHERED = (
    "DeepSpeed ZeRO-3 with stage3_gather_16bit_weights_on_model_save false: %s holds the "
    "model's config and DeepSpeed's checkpoint (global_step*/), not full weights. Recover "
    "them with trainer_dist.export_deepspeed_checkpoint(folder, 'model.safetensors') (or "
    "the zero_to_fp32.py DeepSpeed wrote there), or set "
    "stage3_gather_16bit_weights_on_model_save to true in the DeepSpeed config."
)
_NOTHING_TO_SAVE = (
    "DeepSpeed ZeRO-3 with stage3_gather_16bit_weights_on_model_save false, and no "
    "DeepSpeed engine trains the model yet to write its checkpoint: %s holds the model's "
    "config, no weights. Set stage3_gather_16bit_weights_on_model_save to true in the "
    "DeepSpeed config to save the weights of a partitioned model before training."
)


def _refuse_resume_without_deepspeed_state(checkpoint: str) -> NoReturn:
    """A DeepSpeed run resumes only from DeepSpeed's files (optimizer partitions); a
    checkpoint without them (``save_only_model``) is refused, as by the reference."""
    raise ValueError(
        f"resume_from_checkpoint={checkpoint!r} holds no DeepSpeed checkpoint (no 'latest' "
        "file nor global_step*/ folder), only the model: it was saved with "
        "save_only_model=True (or without DeepSpeed), and a DeepSpeed run resumes its "
        "optimizer and ZeRO partitions only from DeepSpeed's files. Resume from a "
        "checkpoint saved without save_only_model, or start a new run from these weights: "
        "load the model from that folder (from_pretrained) and call train() without "
        "resume_from_checkpoint."
    )


def _strategy(value: Any) -> str:
    return str(getattr(value, "value", value))


class _Incompatible(NamedTuple):
    """What ``nn.Module.load_state_dict`` returns; the runtime loads strictly."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class RuntimeModel:
    """The model as a checkpoint store sees it when loading: weights go through the runtime.

    A store calls ``load_state_dict(state)`` on every process (it reads the files on
    each); the runtime then puts each process's part in place (``load_state_dict`` is a
    collective for sharded models). Names a checkpoint left out because they share
    memory with another (tied weights, written once) are filled in first.
    """

    def __init__(self, runtime: Any, model: Any) -> None:
        self.runtime, self.model = runtime, model
        self.module = runtime.unwrap_model(model)

    def parameters(self) -> Iterator[Any]:
        """The module's parameters (a store reads the device to load onto from them)."""
        return self.module.parameters()

    def state_dict(self) -> dict[str, Any]:
        """The module's local state dict (no gathering)."""
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> _Incompatible:
        """Load the full ``state`` through the runtime (always strictly)."""
        full = _with_tied_aliases(self.module, dict(state))
        self.runtime.load_state_dict(self.model, full)
        return _Incompatible([], [])


class RuntimeOptimizer:
    """The optimizer as a checkpoint store sees it: its state goes through the runtime.

    ``state`` is the full state gathered beforehand on every process (a collective the
    store could not run, since it asks only writers for ``state_dict()``); loading
    hands the state read from the checkpoint to ``runtime.load_optimizer_state_dict``.
    """

    def __init__(self, runtime: Any, model: Any, optimizer: Any, state: Any = None) -> None:
        self.runtime, self.model, self.optimizer, self.state = runtime, model, optimizer, state

    def state_dict(self) -> dict[str, Any]:
        """The state gathered when this object was made."""
        return self.state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state`` through the runtime (every process calls it)."""
        self.runtime.load_optimizer_state_dict(self.model, self.optimizer, state)


def _with_tied_aliases(module: Any, state: dict[str, Any]) -> dict[str, Any]:
    """``state`` plus the names it lacks that share a tensor with a name it has."""
    groups: dict[int, list[str]] = {}
    for name, value in module.state_dict(keep_vars=True).items():
        groups.setdefault(id(value), []).append(name)
    for names in groups.values():
        present = [name for name in names if name in state]
        for name in names:
            if present and name not in state:
                state[name] = state[present[0]]
    return state


def is_sharded_checkpoint(trainer: Trainer, checkpoint: str) -> bool:
    """Whether ``checkpoint`` holds sharded state (asked of the store when it can tell)."""
    probe = getattr(trainer.checkpoint_store, "is_sharded", None)
    if probe is not None:
        return bool(probe(checkpoint))
    return trainer.runtime.checkpoint_format == "sharded"


def _map_location(runtime: Any) -> Any:
    # Each process reads the whole file: with sharded parameters, onto the CPU rather
    # than filling every device with a full copy.
    return "cpu" if runtime.shards_parameters else None


def restore_checkpoint(trainer: Trainer, checkpoint: str) -> LoadedCheckpoint:
    """Restore model, optimizer and scheduler from ``checkpoint`` (every process calls it).

    Returns what the store read besides (trainer state, RNG, scaler).
    """
    runtime, model = trainer.runtime, trainer.model_wrapped
    if is_sharded_checkpoint(trainer, checkpoint):
        content = CheckpointContent(scheduler=trainer.lr_scheduler)
    elif getattr(trainer, "is_deepspeed_enabled", False):
        _refuse_resume_without_deepspeed_state(checkpoint)
    else:
        content = CheckpointContent(
            model=RuntimeModel(runtime, model),
            optimizer=RuntimeOptimizer(runtime, model, trainer.optimizer),
            scheduler=trainer.lr_scheduler,
        )
    try:
        loaded = trainer.checkpoint_store.load(
            checkpoint,
            content,
            process_index=runtime.process_index,
            map_location=_map_location(runtime),
        )
    except RuntimeError as error:
        if not _is_state_dict_mismatch(error):
            raise
        raise ValueError(
            f"The checkpoint {checkpoint} does not fit the model being trained "
            f"({type(runtime.unwrap_model(model)).__name__}); torch says: {error} Resume "
            "into a model built as the one that wrote the checkpoint (same class and "
            "config), or train without resume_from_checkpoint. The checkpoint is unchanged."
        ) from error
    if content.model is None:  # checked complete by the store first
        runtime.load_sharded_state(checkpoint, model, trainer.optimizer)
    _catch_up_fresh_schedule(trainer.lr_scheduler, loaded)
    return loaded


def _is_state_dict_mismatch(error: RuntimeError) -> bool:
    """Whether ``load_state_dict`` refused weights of other names or shapes."""
    return "Error(s) in loading state_dict" in str(error)


def _catch_up_fresh_schedule(scheduler: Any, loaded: LoadedCheckpoint) -> None:
    """Move a schedule the checkpoint held no state for (``save_only_model``) to the step
    the run resumes at, so that the learning rate goes on from there instead of starting
    the warm-up again; the optimizer's moments are lost all the same (the store warns).

    The store says which states it found none for (``missing_states``). A scheduler
    stepped on metrics (``ReduceLROnPlateau``, ``GreedyLR``) follows evaluations, not
    steps, and is left as is.
    """
    step = getattr(loaded.trainer_state, "global_step", 0) or 0
    if step <= 0 or "scheduler" not in loaded.missing_states or steps_on_metrics(scheduler):
        return
    with warnings.catch_warnings():  # stepping before any optimizer.step() is intended
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(step):
            scheduler.step()
    logger.warning(
        "%s holds no scheduler state: the learning-rate schedule continues at step %d.",
        loaded.path,
        step,
    )


def restore_weights(trainer: Trainer, checkpoint: str) -> None:
    """Load only the model weights of ``checkpoint`` (every process calls it)."""
    runtime, model = trainer.runtime, trainer.model_wrapped
    if is_sharded_checkpoint(trainer, checkpoint):
        runtime.load_sharded_state(checkpoint, model)
        return
    trainer.checkpoint_store.load_model(
        checkpoint, RuntimeModel(runtime, model), map_location=_map_location(runtime)
    )


def _check_shared_folder(runtime: Any, folder: str) -> None:
    """Raise on every process unless all of them see the same ``folder``.

    Every process writes its shards into one folder, which needs storage they all share;
    on separate disks (nodes without shared storage, or each node writing its own copy
    with ``save_on_each_node``) the shards would be scattered over several incomplete
    checkpoints. The folder's inode number is compared across processes.
    """
    if runtime.num_processes == 1:
        return
    inode = os.stat(folder).st_ino & (2**62 - 1) if os.path.isdir(folder) else -1
    both = torch.tensor([inode, -inode], dtype=torch.int64, device=runtime.device)
    low, minus_high = (int(v) for v in runtime.reduce(both, "min").tolist())
    if low < 0 or low != -minus_high:
        raise RuntimeError(
            f"Cannot save a sharded checkpoint in {folder}: the {runtime.num_processes} "
            "processes do not all see that folder on one shared storage (each writes its "
            "shards there). Point output_dir to storage every node shares (and leave "
            "save_on_each_node off), or save full checkpoints (fsdp_config "
            "state_dict_type='FULL_STATE_DICT')."
        )


class CheckpointWriter:
    """Writes models and checkpoints for one Trainer through its checkpoint store."""

    def __init__(self, trainer: Trainer, store: CheckpointStore | None = None) -> None:
        self.trainer = trainer
        self._own_store = store is None
        self._store = (
            store if store is not None else default_checkpoint_store(trainer.args, trainer.runtime)
        )

    @property
    def store(self) -> CheckpointStore:
        """The checkpoint store; the default one follows ``args.save_safetensors`` as it
        is when a save happens (a script may change the arguments after construction)."""
        if self._own_store:
            safe = bool(getattr(self.trainer.args, "save_safetensors", True))
            self._store.safe_serialization = safe  # type: ignore[attr-defined]  # ours
        return self._store

    @store.setter
    def store(self, store: CheckpointStore) -> None:
        self._own_store, self._store = False, store

    def _model_content(
        self, *, weights: bool = True, beside_shards: bool = False
    ) -> CheckpointContent:
        """What ``save_model`` writes; gathering the weights is a collective.

        ``beside_shards``: the weights go into a sharded checkpoint on shared storage,
        where the main process writes them; a writer that gathered none (ZeRO-3 gathers
        on the main process only) then writes no weights rather than refusing.
        """
        trainer = self.trainer
        runtime, wrapped = trainer.runtime, trainer.model_wrapped
        content = CheckpointContent(
            processing_class=processing_class_to_save(trainer), training_args=trainer.args
        )
        if weights:
            state = runtime.state_dict(wrapped)
            if state or not beside_shards:
                content.model, content.state_dict = runtime.unwrap_model(wrapped), state
                self._check_gathered(content)
        return content

    def _check_gathered(self, content: CheckpointContent) -> None:
        """Refuse to write empty weights: a runtime may gather them on the main process
        only, and ``save_on_each_node`` makes other processes writers."""
        trainer = self.trainer
        if content.state_dict or not trainer.args.should_save:
            return
        if next(iter(content.model.parameters()), None) is None:
            return
        runtime = trainer.runtime
        raise RuntimeError(
            f"{type(runtime).__name__}.state_dict() gave process {runtime.process_index} no "
            "weights, but this process writes checkpoints (save_on_each_node="
            f"{trainer.args.save_on_each_node}). This runtime gathers full weights on the "
            "main process only: turn save_on_each_node off, or save sharded checkpoints."
        )

    def _resume_content(self, content: CheckpointContent, *, sharded: bool) -> None:
        """Add optimizer, scheduler, scaler and sampler state (unless save_only_model)."""
        trainer = self.trainer
        runtime, wrapped = trainer.runtime, trainer.model_wrapped
        if not sharded:  # a sharded checkpoint keeps the optimizer in its shards
            state = runtime.optimizer_state_dict(wrapped, trainer.optimizer)
            content.optimizer = RuntimeOptimizer(runtime, wrapped, trainer.optimizer, state)
        content.scheduler = trainer.lr_scheduler
        content.scaler_state = runtime.scaler_state_dict() or None
        sampler_state = getattr(getattr(trainer, "_train_sampler", None), "sampler_state", None)
        content.rng_extra = {"sampler": sampler_state()} if sampler_state else {}

    def _write_shards(self, folder: str) -> None:
        """Every process writes its shards of model (and optimizer) state into ``folder``."""
        trainer = self.trainer
        runtime = trainer.runtime
        _check_shared_folder(runtime, folder)
        optimizer = None if trainer.args.save_only_model else trainer.optimizer
        runtime.save_sharded_state(folder, trainer.model_wrapped, optimizer)
        if _full_weights_on_save(runtime) is False and trainer.args.should_save:
            write_model_config(runtime.unwrap_model(trainer.model_wrapped), folder)
            step = trainer.state.global_step
            final = os.path.join(trainer.args.output_dir, f"{CHECKPOINT_PREFIX}-{step}")
            logger.warning(_NOT_GATHERED, final)

    def _sharded_options(self) -> dict[str, Any]:
        if not accepts_argument(self.store.save, "sharded_writer"):
            raise TypeError(
                f"{type(self.trainer.runtime).__name__} saves sharded checkpoints, but "
                f"checkpoint_store={type(self.store).__name__} cannot: its save() takes no "
                "sharded_writer. Use trainer_checkpoint.FolderCheckpointStore, or save full "
                "checkpoints (fsdp_config state_dict_type='FULL_STATE_DICT')."
            )
        return {"sharded_writer": self._write_shards}

    def save_model(self, output_dir: str | None = None) -> None:
        """Weights, processing class and arguments into ``output_dir`` (writer processes)."""
        trainer = self.trainer
        output_dir = output_dir or trainer.args.output_dir
        gathers = _full_weights_on_save(trainer.runtime) is not False
        # Every process builds the content: gathering a sharded model's state dict is a
        # collective, and a writer waiting alone for it would hang.
        content = self._model_content(weights=gathers)
        if trainer.args.should_save and gathers:
            trainer._save(output_dir, state_dict=content.state_dict)  # a subclass may override
        elif trainer.args.should_save:
            logger.info("Saving model checkpoint to %s", output_dir)
            _note_weights_only(content.model)
            self.store.save_model(output_dir, content)
        if not gathers:
            self._save_not_gathered(output_dir)
        trainer.runtime.wait_for_everyone()

    def write_model(self, output_dir: str, state_dict: Any = None) -> None:
        """The reference's ``_save``: write the model (with ``state_dict`` for weights
        when given, else the model's own), processing class and arguments into
        ``output_dir``. No collective: only writing processes call it."""
        trainer = self.trainer
        content = CheckpointContent(
            model=trainer.runtime.unwrap_model(trainer.model_wrapped),
            state_dict=state_dict,
            processing_class=processing_class_to_save(trainer),
            training_args=trainer.args,
        )
        logger.info("Saving model checkpoint to %s", output_dir)
        _note_weights_only(content.model)
        self.store.save_model(output_dir, content)

    def _save_not_gathered(self, folder: str) -> None:
        """The model's config and DeepSpeed's checkpoint in place of full weights, as the
        reference's ``save_model`` writes them when ZeRO-3 may not gather (every process
        calls it: DeepSpeed's save is a collective)."""
        trainer = self.trainer
        runtime, wrapped = trainer.runtime, trainer.model_wrapped
        writer = bool(trainer.args.should_save)
        if writer:
            write_model_config(runtime.unwrap_model(wrapped), folder)
        if getattr(runtime, "engine", None) is None:
            if writer:
                logger.warning(_NOTHING_TO_SAVE, folder)
            return
        runtime.save_sharded_state(folder, wrapped)
        if writer:
            logger.warning(_NOT_GATHERED, folder)

    def save_checkpoint(self, run_dir: str | None = None) -> str:
        """Write ``checkpoint-<global_step>`` into ``run_dir`` (default ``output_dir``; a
        search trial's ``run-<id>`` folder), then rotate; return its path."""
        trainer = self.trainer
        args, state, runtime = trainer.args, trainer.state, trainer.runtime
        run_dir = run_dir or args.output_dir
        trainer.store_flos()
        step = state.global_step
        best_before = state.best_model_checkpoint
        self._point_best_checkpoint(run_dir, step)
        sharded = runtime.checkpoint_format == "sharded"
        full = _full_weights_on_save(runtime)
        # save_only_model keeps DeepSpeed's files out when the weights exist without them.
        writes_shards = sharded and not (args.save_only_model and full)
        options = self._sharded_options() if writes_shards else {}
        content = self._model_content(
            weights=not sharded or bool(full), beside_shards=writes_shards
        )
        if not args.save_only_model:
            self._resume_content(content, sharded=writes_shards)
        state.stateful_callbacks = export_callback_states(trainer)
        content.trainer_state = state
        if args.should_save:
            logger.info(
                "Saving model checkpoint to %s",
                os.path.join(run_dir, f"{CHECKPOINT_PREFIX}-{step}"),
            )
            _note_weights_only(content.model)
        try:
            path = self.store.save(
                run_dir,
                step,
                content,
                process_index=runtime.process_index,
                is_writer=bool(args.should_save),
                barrier=runtime.wait_for_everyone,
                **options,
            )
        except BaseException:
            state.best_model_checkpoint = best_before  # the new folder does not exist
            raise
        if args.should_save and args.save_total_limit:
            # The folder just written is kept even when a newer step exists: a run
            # resumed from an earlier checkpoint left the later ones of the abandoned run.
            # The checkpoint it resumed from is not protected (as in the reference): the
            # folder just written supersedes it.
            keep = [state.best_model_checkpoint, path]
            self.store.rotate(run_dir, args.save_total_limit, keep=[k for k in keep if k])
        return path

    def _point_best_checkpoint(self, output_dir: str, step: int) -> None:
        state = self.trainer.state
        if state.best_global_step is None:
            return
        best = os.path.join(output_dir, f"{CHECKPOINT_PREFIX}-{state.best_global_step}")
        if state.best_global_step == step or os.path.isdir(best):
            state.best_model_checkpoint = best

    def record_metrics(self, metrics: dict[str, float] | None) -> bool:
        """Track ``metric_for_best_model``; return whether ``metrics`` is a new best.

        Raises:
            KeyError: the evaluation did not return the metric named.
        """
        args, state = self.trainer.args, self.trainer.state
        if not metrics or args.metric_for_best_model is None:
            return False
        key = best_metric_key(args.metric_for_best_model)
        if key not in metrics:
            raise KeyError(
                f"metric_for_best_model={args.metric_for_best_model!r}: the evaluation "
                f"returned no {key!r}; it returned {', '.join(sorted(metrics))}. Pass one "
                "of those (with or without the 'eval_' prefix)."
            )
        value = float(metrics[key])
        greater = best_metric_greater_is_better(key, args.greater_is_better)
        best = state.best_metric
        if best is None:
            best = -math.inf if greater else math.inf
        if not (value > best if greater else value < best):
            return False
        state.best_metric = value
        if _strategy(args.save_strategy) != "no":
            state.best_global_step = state.global_step
        return True

    def save_strategy_is_best(self) -> bool:
        """Whether checkpoints are written only when the best metric improves."""
        return _strategy(self.trainer.args.save_strategy) == "best"

    def load_best_model(self) -> None:
        """Load the weights of ``state.best_model_checkpoint`` (every process calls it)."""
        trainer = self.trainer
        best = trainer.state.best_model_checkpoint
        logger.info("Loading best model from %s (score: %s).", best, trainer.state.best_metric)
        restore_weights(trainer, best)

    def save_state(self) -> None:
        """Write ``trainer_state.json`` into ``output_dir`` (main process only)."""
        save_state(self.trainer)
