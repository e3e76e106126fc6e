"""``Seq2SeqTrainer``: evaluation and prediction through the model's ``generate``.

With ``predict_with_generate=True`` the predictions of ``evaluate`` / ``predict`` are
generated token ids rather than logits, so that ``compute_metrics`` can score text
(ROUGE, BLEU, exact match). Generation settings come, highest priority first, from the
keyword arguments of ``evaluate`` / ``predict``, from ``generation_max_length`` /
``generation_num_beams`` of the arguments, from ``generation_config`` (set on the model),
and finally from the model's own defaults. Any model with a ``generate`` method works:
transformers models, or one's own module that accepts the batch's inputs and the
generation keywords.

When nothing sets a length and the model has a ``generation_config`` without one (the
transformers 5 default), ``generate`` gets the generation defaults' ``max_length`` (20),
so that every batch ends at the same width, as the reference's sequences do.

Sequences are padded to the generation's maximum length with the pad token (within a
batch, so every batch has one width when the length is known), and, across batches of
different widths, with the pad token too (not -100), so that the predictions can be
passed to ``tokenizer.batch_decode`` as they are. Labels keep -100 across batches.

With ``label_smoothing_factor`` (or ``compute_loss_func``) the loss of a generating
step comes from a forward pass that keeps the labels in the inputs (encoder-decoder
models build their decoder inputs from them), then the smoother (or the function) is
applied to the outputs and the labels.

When the runtime shards the weights (``runtime.shards_parameters``: FSDP, ZeRO-3),
``generate`` gets ``synced_gpus=True`` unless the generation keywords set it: every
process then keeps running forward passes until all have finished generating.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_core import EvalPrediction, PredictionOutput, Runtime, TrainerCallback
from trainer_loop._inputs import adapter_base_model, call_model, is_causal_lm
from trainer_loop._loss_scaling import compute_loss_is_overridden
from trainer_loop._model_outputs import loss_from_outputs
from trainer_loop._nested import PADDING_INDEX
from trainer_loop._trainer import Trainer

# Inputs derived from the labels: generation must start from scratch, not continue them.
_LABEL_DERIVED = ("decoder_input_ids", "decoder_attention_mask")
# transformers' default max_length, for a generation config that cannot tell its own.
_DEFAULT_MAX_LENGTH = 20


def _sets_length(config: Any) -> bool:
    """Whether a generation config (or None) sets ``max_length`` or ``max_new_tokens``."""
    return any(getattr(config, name, None) is not None for name in ("max_length", "max_new_tokens"))


def _default_max_length(config: Any) -> int:
    """The ``max_length`` ``generate`` falls back to: transformers 5 keeps its defaults
    in ``_get_default_generation_params()``; earlier releases put 20 in every config."""
    defaults = getattr(config, "_get_default_generation_params", None)
    if callable(defaults):
        value = defaults().get("max_length")
        if value is not None:
            return int(value)
    return _DEFAULT_MAX_LENGTH


def _takes_keyword(function: Any, name: str) -> bool:
    """Whether ``function`` accepts the keyword ``name`` (by name or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(
        parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()
    )


@contextmanager
def _root_unsharded(model: Any) -> Iterator[None]:
    """Hold the root's own weights gathered while ``model`` generates (FSDP2 modules).

    ``generate`` of an encoder-decoder model runs the encoder directly, not through the
    root's ``forward``, so torch's ``fully_shard`` would neither set the root up (it
    does that in the root's first forward) nor gather the weights that belong to the
    root unit (the shared embeddings) for it. ``unshard()`` is a collective: every
    process calls it once per batch, as each runs the same number of batches. Models
    that are not ``fully_shard`` modules (ZeRO-3 gathers per submodule) are left as
    they are.
    """
    unshard, reshard = getattr(model, "unshard", None), getattr(model, "reshard", None)
    state = getattr(model, "_get_fsdp_state", None)
    if not (callable(unshard) and callable(reshard) and callable(state)):
        yield
        return
    # torch's private API: there is no public way to make the root the root before a
    # submodule's forward runs first (it raises once the root's forward runs later).
    state()._lazy_init()
    unshard()
    try:
        yield
    finally:
        reshard()


def pad_to_length(tensor: torch.Tensor, length: int, pad_token_id: int) -> torch.Tensor:
    """``tensor`` padded on the right of its last dimension to ``length`` with the pad id."""
    if tensor.shape[-1] >= length:
        return tensor
    padded = tensor.new_full((*tensor.shape[:-1], length), pad_token_id)
    padded[..., : tensor.shape[-1]] = tensor
    return padded


def _generation_config_from(config_class: Any, source: str) -> Any:
    """Read a configuration from a JSON file (any name), a folder or a model id."""
    if os.path.isfile(source):
        folder, name = os.path.split(os.path.abspath(source))
        return config_class.from_pretrained(folder, config_file_name=name)
    return config_class.from_pretrained(source)


def _validate_strictly(config: Any) -> None:
    validate = getattr(config, "validate", None)
    if not callable(validate):
        return
    try:
        validate(strict=True)
    except TypeError:  # a transformers without strict validation
        validate()
    except ValueError as error:
        raise ValueError(
            f"{error}\nFix these settings of generation_config before training: every "
            "checkpoint saves this configuration, and saving refuses it."
        ) from error


class Seq2SeqTrainer(Trainer):
    """A :class:`Trainer` whose evaluation can generate (the reference's ``Seq2SeqTrainer``).

    Takes the Trainer's arguments (keyword-only ones beyond those named here are passed
    on). ``args`` is normally a ``Seq2SeqTrainingArguments``; plain ``TrainingArguments``
    work too and mean "no generation settings".
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        data_collator: Callable[[list[Any]], dict[str, Any]] | None = None,
        train_dataset: Any | None = None,
        eval_dataset: Any | None = None,
        tokenizer: Any | None = None,
        model_init: Callable[..., nn.Module] | None = None,
        compute_metrics: Callable[[EvalPrediction], dict[str, float]] | None = None,
        callbacks: list[TrainerCallback | type[TrainerCallback]] | None = None,
        optimizers: tuple[Any, Any] = (None, None),
        preprocess_logits_for_metrics: Callable[[Any, Any], Any] | None = None,
        *,
        processing_class: Any | None = None,
        compute_loss_func: Callable[..., torch.Tensor] | None = None,
        runtime: Runtime | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model,
            args,
            data_collator,
            train_dataset,
            eval_dataset,
            tokenizer,
            model_init,
            compute_metrics,
            callbacks,
            optimizers,
            preprocess_logits_for_metrics,
            processing_class=processing_class,
            compute_loss_func=compute_loss_func,
            runtime=runtime,
            **kwargs,
        )
        self._generation_defaults: dict[str, Any] = {}
        config = getattr(self.args, "generation_config", None)
        if config is not None:
            self._apply_generation_config(config)

    # ------------------------------------------------------------ generation config
    @staticmethod
    def load_generation_config(gen_config_arg: Any) -> Any:
        """A transformers ``GenerationConfig`` from a model id, a folder, a JSON file, a
        dict or an object (copied: the caller's stays as it is), validated strictly.

        Strict validation is what ``save_pretrained`` applies at every checkpoint, so a
        configuration it would refuse is refused here, before any training.

        Raises:
            ImportError: a name or a dict was given and transformers is not installed.
            ValueError: the configuration is invalid (transformers' reasons listed).
        """
        if hasattr(gen_config_arg, "to_dict"):
            config = copy.deepcopy(gen_config_arg)
        else:
            try:
                from transformers import GenerationConfig
            except ImportError as error:
                raise ImportError(
                    f"generation_config={gen_config_arg!r} needs transformers to be read "
                    "(pip install transformers); or pass the settings as keyword arguments "
                    "of evaluate()/predict()."
                ) from error
            if isinstance(gen_config_arg, dict):
                config = GenerationConfig.from_dict(gen_config_arg)
            else:
                config = _generation_config_from(GenerationConfig, os.fspath(gen_config_arg))
        _validate_strictly(config)
        return config

    def _apply_generation_config(self, config: Any) -> None:
        """Set the configuration on the model, or keep a dict as default generate kwargs
        for a model that has no ``generation_config`` (not a transformers model). A dict
        overrides those keys of the model's own configuration (its start, end and pad
        ids stay).

        A PEFT model gets it on the model it wraps too: PEFT's encoder-decoder
        ``generate`` reads the wrapped model's configuration, so one set on the wrapper
        alone would be ignored (the reference sets the wrapper's only).
        """
        current = getattr(self.model, "generation_config", None)
        if isinstance(config, dict) and current is None:
            self._generation_defaults = dict(config)
            return
        if isinstance(config, dict) and hasattr(current, "update"):
            merged = copy.deepcopy(current)
            merged.update(**config)
            config = merged
        config = self.load_generation_config(config)
        self.model.generation_config = config
        base = adapter_base_model(self.model)
        if base is not self.model:
            base.generation_config = config

    def _pad_tensors_to_max_len(self, tensor: torch.Tensor, max_length: int) -> torch.Tensor:
        """``tensor`` padded on the right to ``max_length`` with the pad id: the
        reference's helper, which subclasses overriding ``prediction_step`` call."""
        return pad_to_length(tensor, max_length, self._pad_token_id())

    def _generation_kwargs(self, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` completed from the arguments' generation settings (None values dropped)."""
        kwargs = {**self._generation_defaults, **given}
        max_length = getattr(self.args, "generation_max_length", None)
        if kwargs.get("max_length") is None and kwargs.get("max_new_tokens") is None:
            kwargs["max_length"] = max_length
        if kwargs.get("num_beams") is None:
            kwargs["num_beams"] = getattr(self.args, "generation_num_beams", None)
        return {key: value for key, value in kwargs.items() if value is not None}

    # ----------------------------------------------------------------- entry points
    def evaluate(
        self,
        eval_dataset: Any | dict[str, Any] | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
        **gen_kwargs: Any,
    ) -> dict[str, float]:
        """Evaluate; ``gen_kwargs`` (``max_length``, ``num_beams``, any ``generate``
        keyword) apply when ``predict_with_generate`` is on."""
        self._gen_kwargs = self._generation_kwargs(gen_kwargs)
        return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def predict(
        self,
        test_dataset: Any,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "test",
        **gen_kwargs: Any,
    ) -> PredictionOutput:
        """Predict; generated token ids are the predictions with ``predict_with_generate``."""
        self._gen_kwargs = self._generation_kwargs(gen_kwargs)
        return super().predict(test_dataset, ignore_keys, metric_key_prefix)

    # -------------------------------------------------------------- prediction_step
    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
        **gen_kwargs: Any,
    ) -> tuple[torch.Tensor | None, Any, Any]:
        """``(loss, generated_tokens, labels)`` with ``predict_with_generate``, else the
        Trainer's ``(loss, logits, labels)``."""
        if not getattr(self.args, "predict_with_generate", False) or prediction_loss_only:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        inputs = self._prepare_inputs(inputs)
        if gen_kwargs:
            kwargs = dict(gen_kwargs)
        elif hasattr(self, "_gen_kwargs"):  # set by evaluate()/predict(), or a subclass:
            kwargs = dict(self._gen_kwargs or {})  # {} then means the model's defaults
        else:  # called before any evaluate()/predict(): the arguments' settings
            kwargs = self._generation_kwargs({})
        kwargs = self._with_default_length(kwargs)
        tokens = self._generate(model, inputs, kwargs)
        has_labels = inputs.get("labels") is not None
        loss = self._loss_of(model, inputs) if has_labels else None
        labels = inputs["labels"].detach() if has_labels else None
        length = self._target_length(kwargs)
        if length is not None:
            pad_id = self._pad_token_id()
            tokens = pad_to_length(tokens, length, pad_id)
            labels = pad_to_length(labels, length, pad_id) if labels is not None else None
        return loss, tokens, labels

    def _generator(self, model: nn.Module) -> Any:
        """The module whose ``generate`` to call: the user's model inside any wrapper."""
        for candidate in (self.runtime.unwrap_model(model), self.runtime.unwrap_model(self.model)):
            if callable(getattr(candidate, "generate", None)):
                return candidate
        raise TypeError(
            f"predict_with_generate=True, but {type(self.model).__name__} has no generate() "
            "method. Give the model one (taking the batch's inputs and keywords such as "
            "max_length and num_beams, returning token ids), or set predict_with_generate=False."
        )

    def _generate(self, model: nn.Module, inputs: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        generator = self._generator(model)
        label_names = set(self.label_names) | {"labels"}
        generation_inputs = {k: v for k, v in inputs.items() if k not in label_names}
        labels = inputs.get("labels")
        decoder_inputs = inputs.get("decoder_input_ids")
        if (
            labels is not None
            and decoder_inputs is not None
            and labels.shape == decoder_inputs.shape
        ):
            generation_inputs = {
                k: v for k, v in generation_inputs.items() if k not in _LABEL_DERIVED
            }
        sharded = bool(getattr(self.runtime, "shards_parameters", False))
        if (
            sharded
            and "synced_gpus" not in kwargs
            and _takes_keyword(generator.generate, "synced_gpus")
        ):
            # Each forward pass of sharded weights gathers them from every process, so a
            # process that finished early must keep joining the others' passes.
            kwargs = {**kwargs, "synced_gpus": True}
        with torch.no_grad(), _root_unsharded(generator) if sharded else nullcontext():
            tokens = generator.generate(**generation_inputs, **kwargs)
        return getattr(tokens, "sequences", tokens)  # return_dict_in_generate=True

    def _loss_of(self, model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        """The loss of a generating step, as the reference's: the model's own loss of a
        forward pass given the labels, or the smoothed one with ``label_smoothing_factor``.

        ``compute_loss_func`` is not applied here, as in the reference (the same model
        evaluated without ``predict_with_generate`` does apply it). An overridden
        ``compute_loss`` is, unless a label smoother replaces the loss.
        """
        with torch.no_grad(), self.compute_loss_context_manager():
            if self.label_smoother is None and compute_loss_is_overridden(self):
                loss = self.compute_loss(model, inputs)
            else:
                loss = self._model_loss(model, inputs)
        return loss.detach().mean()

    def _model_loss(self, model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        """The forward keeps the labels: an encoder-decoder model (T5, BART) builds its
        decoder inputs from them. Causal language models have their labels shifted for
        smoothing, as in ``compute_loss``."""
        if self.label_smoother is None:
            return loss_from_outputs(call_model(model, inputs), require_scalar=False)
        unwrapped = self.runtime.unwrap_model(model)
        labels = inputs["labels"]
        if not _takes_keyword(unwrapped.forward, "labels"):
            inputs = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = call_model(model, inputs)
        return self.label_smoother(outputs, labels, shift_labels=is_causal_lm(unwrapped))

    def _with_default_length(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with the generation defaults' ``max_length`` when no length is set.

        transformers 5 leaves ``max_length`` unset in a model's ``generation_config``
        and lets ``generate`` add 20 tokens to each batch's prompt, so batches would end
        at different widths. The reference's trainer writes the defaults into the model's
        config after its first batch; passing the default to ``generate`` gives every
        batch (the first included) the same width without changing the user's model.
        Models without a ``generation_config`` (not transformers models) are left as is,
        and so are decoder-only models: their sequences hold the prompt, so a total
        length of 20 would refuse prompts of 20 tokens or more, and their widths differ
        between batches anyway (the evaluation loop pads them with the pad token).
        """
        if kwargs.get("max_length") is not None or kwargs.get("max_new_tokens") is not None:
            return kwargs
        model = self.runtime.unwrap_model(self.model)
        model_config = getattr(model, "generation_config", None)
        encoder_decoder = getattr(getattr(model, "config", None), "is_encoder_decoder", True)
        if model_config is None or not encoder_decoder:
            return kwargs
        for config in (model_config, kwargs.get("generation_config")):
            if _sets_length(config):
                return kwargs
        return {**kwargs, "max_length": _default_max_length(model_config)}

    def _prediction_padding_index(self) -> int:
        """The value the evaluation loop pads predictions with across batches.

        Generated token ids are padded with the pad token, so that
        ``tokenizer.batch_decode`` takes the predictions as they are (-100 is no token
        id and makes it fail); logits keep the Trainer's -100. Without any pad or
        end-of-sequence id to use, -100 it is.
        """
        if not getattr(self.args, "predict_with_generate", False):
            return PADDING_INDEX
        try:
            return self._pad_token_id()
        except ValueError:
            return PADDING_INDEX

    def _target_length(self, kwargs: dict[str, Any]) -> int | None:
        """The width generated sequences are padded to, when the settings fix one."""
        if kwargs.get("max_length") is not None:
            return int(kwargs["max_length"])
        if kwargs.get("max_new_tokens") is not None:
            return int(kwargs["max_new_tokens"]) + 1
        config = getattr(self.runtime.unwrap_model(self.model), "generation_config", None)
        if getattr(config, "max_new_tokens", None) is not None:
            return int(config.max_new_tokens) + 1
        max_length = getattr(config, "max_length", None)
        return int(max_length) if max_length is not None else None

    def _pad_token_id(self) -> int:
        """The pad id of the processing class, else of the model's (generation) config,
        else its end-of-sequence id.

        Raises:
            ValueError: none of them defines a pad or end-of-sequence id.
        """
        model = self.runtime.unwrap_model(self.model)
        sources = (
            self.processing_class,
            getattr(model, "generation_config", None),
            getattr(model, "config", None),
        )
        for name in ("pad_token_id", "eos_token_id"):
            for source in sources:
                value = getattr(source, name, None)
                if isinstance(value, (list, tuple)):
                    value = value[0] if value else None
                if value is not None:
                    return int(value)
        raise ValueError(
            "Generated sequences must be padded to max_length, but no pad_token_id is set: "
            "pass a tokenizer / processing_class with a pad token, or set pad_token_id in "
            "the model's config."
        )
