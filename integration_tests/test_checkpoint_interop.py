"""Checkpoints move between transformers' Trainer and ours, in both directions.

Both trainers read the data in order (a sequential sampler) and use the same optimizer,
so their steps compute the same updates: a run that changes trainer at step 10 must end
where a run of ours alone ends at step 20.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
from torch.utils.data import Dataset, SequentialSampler

from trainer import Trainer, TrainerCallback, TrainingArguments

transformers = pytest.importorskip("transformers")


class Tokens(Dataset):
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 32, (40, 8), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        labels = self.ids[index].clone()
        # transformers divides the summed loss by the count of labels that are not -100,
        # unshifted; masking the first label (which the shift drops anyway) makes that
        # count equal the number of predicted tokens, so both trainers compute the mean.
        labels[0] = -100
        return {"input_ids": self.ids[index], "labels": labels}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=1,
        n_head=2,
        n_embd=16,
        vocab_size=32,
        n_positions=8,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return transformers.GPT2LMHeadModel(config)


COMMON = dict(
    per_device_train_batch_size=4,
    max_steps=20,
    save_steps=10,
    learning_rate=1e-2,
    optim="adamw_torch",
    report_to="none",
    disable_tqdm=True,
    use_cpu=True,
    seed=1,
)


class Ours(Trainer):
    def _get_train_sampler(self):
        return SequentialSampler(self.train_dataset)


def _ours(output_dir: str, model, resume=None, callbacks=None) -> Ours:
    trainer = Ours(
        model=model,
        args=TrainingArguments(output_dir=output_dir, save_safetensors=True, **COMMON),
        train_dataset=Tokens(),
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def _theirs(output_dir: str, model, resume=None, callbacks=None):
    args = transformers.TrainingArguments(
        output_dir=output_dir, train_sampling_strategy="sequential", **COMMON
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=Tokens(), callbacks=callbacks
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


class OursStopAt10(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= 10
        return control


class TheirsStopAt10(transformers.TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= 10
        return control


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """20 uninterrupted steps of ours."""
    model = _model()
    _ours(str(tmp_path_factory.mktemp("ours20")), model)
    return model


@pytest.mark.slow
def test_we_resume_a_checkpoint_written_by_transformers(tmp_path, reference_run) -> None:
    _theirs(str(tmp_path / "theirs"), _model(), callbacks=[TheirsStopAt10()])
    checkpoint = tmp_path / "theirs" / "checkpoint-10"
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pth"} <= set(os.listdir(checkpoint))
    model = copy.deepcopy(_model())
    trainer = _ours(str(tmp_path / "ours"), model, resume=str(checkpoint))
    assert trainer.state.global_step == 20
    _assert_same(model, reference_run)


@pytest.mark.slow
def test_transformers_resumes_a_checkpoint_written_by_us(tmp_path, reference_run) -> None:
    _ours(str(tmp_path / "ours"), _model(), callbacks=[OursStopAt10()])
    checkpoint = tmp_path / "ours" / "checkpoint-10"
    model = _model()
    trainer = _theirs(str(tmp_path / "theirs"), model, resume=str(checkpoint))
    assert trainer.state.global_step == 20
    _assert_same(model, reference_run)
