"""Real-world ``Trainer`` subclasses run unchanged: their overrides are called where the
reference calls them, with its arguments.

Each test is a pattern found in public projects (LLaVA, Alpaca/FastChat, PEFT/QLoRA
scripts, TRL, the transformers examples), reduced to a tiny Llama.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from torch.utils.data import SequentialSampler

import trainer_loop
from trainer_args import TrainingArguments
from trainer_loop import Trainer

transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")


def tiny_llama() -> Any:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return transformers.LlamaForCausalLM(config)


def rows(count: int = 8, *, weight: bool = False) -> list[dict[str, Any]]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        ids = torch.randint(0, 64, (8,), generator=generator).tolist()
        row: dict[str, Any] = {"input_ids": ids, "labels": ids}
        if weight:
            row["weight"] = 2.0
        out.append(row)
    return out


def hf_data(count: int = 8, *, weight: bool = False) -> Any:
    return datasets.Dataset.from_list(rows(count, weight=weight))


def make_args(output_dir: Any, **overrides: Any) -> TrainingArguments:
    values: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": 4,
        "max_steps": 2,
        "save_steps": 1,
        "logging_steps": 1,
        "report_to": [],
        "disable_tqdm": True,
        "use_cpu": True,
    }
    values.update(overrides)
    return TrainingArguments(**values)


def files_in(folder: Any) -> set[str]:
    return set(os.listdir(folder))


# ------------------------------------------------------------------ saving
def test_save_with_a_gathered_state_dict_as_alpaca_does(tmp_path):
    """Alpaca / FastChat's ``safe_save_model_for_hf_trainer``: the weights written are
    the ``state_dict`` passed, not the model's own."""
    trainer = Trainer(model=tiny_llama(), args=make_args(tmp_path, save_strategy="no"))
    state = {key: value.detach().cpu().clone() for key, value in trainer.model.state_dict().items()}
    state["lm_head.weight"] = torch.zeros_like(state["lm_head.weight"])
    if trainer.args.should_save:
        trainer._save(str(tmp_path / "final"), state_dict=state)
    reloaded = transformers.LlamaForCausalLM.from_pretrained(str(tmp_path / "final"))
    assert torch.count_nonzero(reloaded.lm_head.weight) == 0
    assert {"config.json", "model.safetensors"} <= files_in(tmp_path / "final")


class RecordingSave(Trainer):
    """LLaVA's pattern: ``_save_checkpoint`` (v4.34 signature) and ``_save`` call super."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[Any] = []

    def _save_checkpoint(self, model: Any, trial: Any, metrics: Any = None) -> None:
        self.calls.append("checkpoint")
        super()._save_checkpoint(model, trial, metrics)

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        self.calls.append(("_save", os.path.basename(output_dir or "")))
        super()._save(output_dir, state_dict)


def test_save_model_writes_through_a_save_override(tmp_path):
    trainer = RecordingSave(model=tiny_llama(), args=make_args(tmp_path))
    trainer.save_model(str(tmp_path / "model"))
    assert trainer.calls == [("_save", "model")]
    assert "model.safetensors" in files_in(tmp_path / "model")


def test_checkpoints_call_the_save_override_like_llava(tmp_path):
    trainer = RecordingSave(model=tiny_llama(), args=make_args(tmp_path), train_dataset=hf_data())
    trainer.train()
    assert trainer.calls == [
        "checkpoint",
        ("_save", "checkpoint-1"),
        "checkpoint",
        ("_save", "checkpoint-2"),
    ]
    assert {"model.safetensors", "optimizer.pt", "trainer_state.json"} <= files_in(
        tmp_path / "checkpoint-2"
    )


class TwoArgumentCheckpoint(Trainer):
    """transformers 5's ``_save_checkpoint(model, trial)``: no ``metrics``."""

    saved = 0

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        self.saved += 1
        super()._save_checkpoint(model, trial)


def test_a_transformers_5_save_checkpoint_override_is_called(tmp_path):
    trainer = TwoArgumentCheckpoint(
        model=tiny_llama(), args=make_args(tmp_path), train_dataset=hf_data()
    )
    trainer.train()
    assert trainer.saved == 2
    assert "model.safetensors" in files_in(tmp_path / "checkpoint-2")


class AdapterSaving(Trainer):
    """PEFT / QLoRA scripts: ``save_model`` writes the adapter, also into checkpoints."""

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "adapter_config.json"), "w") as handle:
            handle.write(f'{{"internal": {str(_internal_call).lower()}}}')


def test_a_save_model_override_writes_into_every_checkpoint(tmp_path):
    trainer = AdapterSaving(model=tiny_llama(), args=make_args(tmp_path), train_dataset=hf_data())
    trainer.train()
    for step in (1, 2):
        folder = tmp_path / f"checkpoint-{step}"
        assert (folder / "adapter_config.json").read_text() == '{"internal": true}'
        assert "trainer_state.json" in files_in(folder)  # still a complete checkpoint


# ---------------------------------------------------------------- columns
class WeightedLoss(Trainer):
    """Uses a dataset column the model's ``forward`` does not take."""

    def compute_loss(
        self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        weight = inputs.pop("weight")
        return model(**inputs).loss * weight.mean()


class ExtraColumns(WeightedLoss):
    """NetfoundTrainer's pattern: super() fills the list, the override adds to it."""

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        self._signature_columns += ["weight"]


class AssignedColumns(WeightedLoss):
    """TRL's older trainers assign the list in ``__init__``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signature_columns = ["input_ids", "labels", "weight"]


@pytest.mark.parametrize("trainer_class", [ExtraColumns, AssignedColumns])
@pytest.mark.parametrize("as_hf_dataset", [True, False])
def test_signature_columns_chosen_by_a_subclass_are_kept(tmp_path, trainer_class, as_hf_dataset):
    data = hf_data(weight=True) if as_hf_dataset else rows(weight=True)
    trainer = trainer_class(
        model=tiny_llama(),
        args=make_args(tmp_path, save_strategy="no", max_steps=1),
        train_dataset=data,
    )
    assert trainer.train().training_loss > 0


# --------------------------------------------------------- loading, placing
class RecordingLoad(Trainer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loaded: list[str] = []

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        self.loaded.append(os.path.basename(resume_from_checkpoint))
        super()._load_from_checkpoint(resume_from_checkpoint, model)


def test_resume_calls_a_load_from_checkpoint_override(tmp_path):
    Trainer(model=tiny_llama(), args=make_args(tmp_path), train_dataset=hf_data()).train()
    trainer = RecordingLoad(
        model=tiny_llama(), args=make_args(tmp_path, max_steps=3), train_dataset=hf_data()
    )
    trainer.train(resume_from_checkpoint=True)
    assert trainer.loaded == ["checkpoint-2"]
    assert trainer.state.global_step == 3


class RecordingMove(Trainer):
    def _move_model_to_device(self, model: Any, device: Any) -> None:
        self.moved_to = str(device)
        super()._move_model_to_device(model, device)


def test_model_placement_calls_move_model_to_device(tmp_path):
    trainer = RecordingMove(model=tiny_llama(), args=make_args(tmp_path))
    assert trainer.moved_to == "cpu"


# ------------------------------------------------------------ evaluation
class CopiedEvaluate(Trainer):
    """An ``evaluate`` copied from the reference's body (many projects do)."""

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        self._memory_tracker.start()
        dataloader = self.get_eval_dataloader(eval_dataset)
        output = self.evaluation_loop(
            dataloader, "Evaluation", None, ignore_keys, metric_key_prefix=metric_key_prefix
        )
        self.log(output.metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, output.metrics
        )
        self._memory_tracker.stop_and_update_metrics(output.metrics)
        return output.metrics


def test_an_evaluate_copied_from_the_reference_reports_memory(tmp_path):
    trainer = CopiedEvaluate(
        model=tiny_llama(),
        args=make_args(tmp_path, skip_memory_metrics=False),
        eval_dataset=hf_data(4),
    )
    metrics = trainer.evaluate()
    assert "eval_loss" in metrics
    assert "eval_mem_cpu_alloc_delta" in metrics


# ---------------------------------------------------------------- samplers
class DatasetSampler(Trainer):
    """transformers 5's ``_get_train_sampler(train_dataset=None)``."""

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        self.sampler_got_dataset = train_dataset is not None
        return SequentialSampler(train_dataset)


class NoArgumentSampler(Trainer):
    """v4.34's ``_get_train_sampler()`` (LLaVA's length-grouped sampler)."""

    def _get_train_sampler(self) -> Any:
        return SequentialSampler(self.train_dataset)


def test_train_sampler_overrides_of_both_signatures_are_called(tmp_path):
    args = make_args(tmp_path, save_strategy="no")
    trainer = DatasetSampler(model=tiny_llama(), args=args, train_dataset=hf_data())
    assert trainer.train().global_step == 2
    assert trainer.sampler_got_dataset
    trainer = NoArgumentSampler(model=tiny_llama(), args=args, train_dataset=hf_data())
    assert isinstance(trainer.get_train_dataloader().sampler, SequentialSampler)


# ------------------------------------------------------- batch sampling (v5)
class CountingWindows(Trainer):
    """transformers 5's ``get_batch_samples``: the loop draws each window through it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.windows: list[tuple[int, int]] = []

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any = None) -> Any:
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        self.windows.append((num_batches, len(batches)))
        return batches, num_items


def test_a_get_batch_samples_override_draws_every_window(tmp_path):
    args = make_args(
        tmp_path, save_strategy="no", per_device_train_batch_size=2, gradient_accumulation_steps=2
    )
    plain = Trainer(model=tiny_llama(), args=args, train_dataset=hf_data())
    counting = CountingWindows(model=tiny_llama(), args=args, train_dataset=hf_data())
    expected = plain.train().training_loss
    assert counting.train().training_loss == pytest.approx(expected, rel=1e-6)
    assert counting.windows == [(2, 2), (2, 2)]


# ---------------------------------------------------------------- optimizer
class GroupedOptimizer(Trainer):
    """LLaVA's ``create_optimizer``: the decay groups rebuilt with ``get_parameter_names``."""

    def create_optimizer(self) -> Any:
        if self.optimizer is None:
            # Names added for such subclasses (looked up here, so that each test fails
            # on its own without them).
            decay = trainer_loop.get_parameter_names(self.model, trainer_loop.ALL_LAYERNORM_LAYERS)
            decay = [name for name in decay if "bias" not in name]
            named = list(self.model.named_parameters())
            groups = [
                {"params": [p for n, p in named if n in decay], "weight_decay": 0.1},
                {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
            ]
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer


def tiny_bert() -> Any:
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    return transformers.BertForSequenceClassification(config)


@pytest.mark.parametrize("build", [tiny_llama, tiny_bert])
@pytest.mark.parametrize("names", [None, ["bias", "norm"]])
def test_get_parameter_names_lists_what_the_reference_lists(build, names):
    from transformers.trainer_pt_utils import get_parameter_names as reference

    model = build()
    expected = reference(model, [torch.nn.LayerNorm], names)
    ours = trainer_loop.get_parameter_names(model, trainer_loop.ALL_LAYERNORM_LAYERS, names)
    assert ours == expected


def test_a_create_optimizer_override_with_parameter_names_trains(tmp_path):
    trainer = GroupedOptimizer(
        model=tiny_llama(), args=make_args(tmp_path, save_strategy="no"), train_dataset=hf_data()
    )
    trainer.train()
    decayed, plain = trainer.optimizer.param_groups
    assert decayed["weight_decay"] == 0.1
    # Llama has no bias and its RMSNorm is no nn.LayerNorm: all 12 are decayed, as with
    # the reference's function.
    assert (len(decayed["params"]), len(plain["params"])) == (12, 0)


# --------------------------------------------------------------- attributes
def test_reference_attributes_subclasses_test(tmp_path):
    trainer = Trainer(model=tiny_llama(), args=make_args(tmp_path))
    assert trainer.deepspeed is None  # FastChat: `if trainer.deepspeed: ...`
    assert trainer.use_apex is False
    assert trainer.hp_search_backend is None
    assert trainer.is_in_train is False
    assert trainer.current_flos == 0
    assert trainer._train_batch_size == 4


class SyncFlagRecorder(Trainer):
    """Reads ``self.accelerator.sync_gradients`` in each micro-step, as subclasses that
    log or clip only on synchronising steps do."""

    seen: list[bool]

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.seen.append(self.accelerator.sync_gradients)
        return super().training_step(model, inputs, num_items_in_batch)


def test_sync_gradients_is_false_on_micro_steps_that_keep_gradients_local(tmp_path):
    args = make_args(
        tmp_path, per_device_train_batch_size=2, gradient_accumulation_steps=2, save_steps=10
    )
    trainer = SyncFlagRecorder(model=tiny_llama(), args=args, train_dataset=rows(8))
    trainer.seen = []
    trainer.train()
    assert trainer.seen == [False, True, False, True]
    assert trainer.accelerator.sync_gradients is True


# ------------------------------------------------- calls scripts written for transformers 5
def _batch() -> dict[str, torch.Tensor]:
    return trainer_loop.default_data_collator(rows(4))


def test_compute_loss_and_training_step_with_an_item_count_before_any_train(tmp_path):
    """Unit tests of custom trainers call these directly, before (or without) train()."""
    trainer = Trainer(model=tiny_llama(), args=make_args(tmp_path))
    batch = _batch()
    mean = trainer.compute_loss(trainer.model, batch)
    items = (batch["labels"][:, 1:] != -100).sum()  # the shifted labels the loss counts
    summed = trainer.compute_loss(trainer.model, batch, num_items_in_batch=items * 2)
    assert summed.item() == pytest.approx(mean.item() / 2, rel=1e-5)
    loss = trainer.training_step(trainer.model, batch, num_items_in_batch=items)
    assert loss.item() == pytest.approx(mean.item(), rel=1e-5)


def test_one_context_override_covers_training_and_evaluation_forwards(tmp_path):
    entered: list[str] = []

    class Counting(Trainer):
        def autocast_smart_context_manager(self, cache_enabled=True):
            entered.append("autocast")
            return super().autocast_smart_context_manager(cache_enabled)

    args = make_args(tmp_path, save_strategy="no", per_device_eval_batch_size=4)
    trainer = Counting(model=tiny_llama(), args=args, train_dataset=rows(8), eval_dataset=rows(8))
    trainer.train()
    assert len(entered) == 2  # compute_loss_context_manager enters it, as the reference
    trainer.evaluate()
    assert len(entered) == 4  # and so does every evaluation forward


def test_the_collators_tokenizer_is_saved_without_a_processing_class(tmp_path):
    class Tokenizer:
        def save_pretrained(self, folder: str) -> None:
            with open(os.path.join(folder, "tokenizer_config.json"), "w") as handle:
                handle.write("{}")

    class WithTokenizer:
        tokenizer = Tokenizer()

        def __call__(self, features):
            return trainer_loop.default_data_collator(features)

    args = make_args(tmp_path, save_strategy="no")
    trainer = Trainer(model=tiny_llama(), args=args, data_collator=WithTokenizer())
    trainer.save_model(str(tmp_path / "saved"))
    assert "tokenizer_config.json" in files_in(tmp_path / "saved")


def test_save_safetensors_is_read_when_saving(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    trainer = Trainer(model=model, args=make_args(tmp_path, save_strategy="no"))
    trainer.save_model(str(tmp_path / "bin"))
    trainer.args.save_safetensors = True  # changed after construction
    trainer.save_model(str(tmp_path / "safe"))
    assert "pytorch_model.bin" in files_in(tmp_path / "bin")
    assert "model.safetensors" in files_in(tmp_path / "safe")


def test_prepare_input_moves_one_nested_input(tmp_path):
    trainer = Trainer(model=tiny_llama(), args=make_args(tmp_path))
    value = {"ids": [torch.ones(2)], "mask": (torch.zeros(1),)}
    moved = trainer._prepare_input(value)
    assert moved["ids"][0].device == trainer.args.device and isinstance(moved["mask"], tuple)


def test_an_eval_dataloader_override_receives_the_trainers_dataset(tmp_path):
    received: list[Any] = []

    class Own(Trainer):
        def get_eval_dataloader(self, eval_dataset=None):
            received.append(eval_dataset)
            return super().get_eval_dataloader(eval_dataset)

    evaluation = rows(4)
    trainer = Own(model=tiny_llama(), args=make_args(tmp_path), eval_dataset=evaluation)
    trainer.evaluate()
    assert received == [evaluation]  # transformers 5 passes it (v4.34 passed None)


def test_gather_function_is_gather_for_metrics_with_the_object_switch(tmp_path):
    """Custom evaluation loops call self.gather_function on each batch's outputs."""
    trainer = Trainer(model=tiny_llama(), args=make_args(tmp_path, eval_use_gather_object=True))
    assert trainer.gather_function.keywords == {"use_gather_object": True}
    assert trainer.gather_function(["a", "b"]) == ["a", "b"]
    trainer.gather_function = list  # a subclass may replace it
    assert trainer.gather_function("ab") == ["a", "b"]
