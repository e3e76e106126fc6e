"""What train() saves and when: strategies, rotation, best model, save_model, a swapped store."""

from __future__ import annotations

import json
import os

import pytest

from trainer import Trainer
from trainer_checkpoint import FolderCheckpointStore, load_weights
from trainer_core import CheckpointStore

from ._checkpoint_helpers import CountingDataset, make_args, make_model, same_weights, weights


def _steps(output_dir: str) -> list[int]:
    names = [n for n in os.listdir(output_dir) if n.startswith("checkpoint-")]
    return sorted(int(n.split("-")[1]) for n in names)


def _trainer(output_dir: str, **overrides) -> Trainer:
    return Trainer(
        model=make_model(),
        args=make_args(output_dir, **overrides),
        train_dataset=CountingDataset(),
        eval_dataset=CountingDataset(8),
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"save_strategy": "no"}, []),
        ({"save_strategy": "epoch"}, [10, 20, 30]),
        ({"save_strategy": "steps", "save_steps": 12}, [12, 24, 30]),
        ({"save_strategy": "steps", "save_steps": 0.25}, [8, 16, 24, 30]),  # a ratio of 30
    ],
)
def test_save_strategies(tmp_path, overrides, expected) -> None:
    _trainer(str(tmp_path), **overrides).train()
    assert _steps(str(tmp_path)) == expected


def test_checkpoint_contents_follow_the_reference_names(tmp_path) -> None:
    _trainer(str(tmp_path), save_steps=30, save_safetensors=True).train()
    names = set(os.listdir(tmp_path / "checkpoint-30"))
    assert {
        "model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
        "trainer_state.json",
        "training_args.json",
        "training_args.bin",
    } <= names
    with open(tmp_path / "checkpoint-30" / "trainer_state.json", encoding="utf-8") as handle:
        assert json.load(handle)["global_step"] == 30
    with open(tmp_path / "checkpoint-30" / "training_args.json", encoding="utf-8") as handle:
        assert json.load(handle)["learning_rate"] == 0.05


def test_save_only_model_and_pickle_weights(tmp_path) -> None:
    _trainer(str(tmp_path), save_steps=30, save_only_model=True, save_safetensors=False).train()
    names = set(os.listdir(tmp_path / "checkpoint-30"))
    assert "pytorch_model.bin" in names and "trainer_state.json" in names
    assert not names & {"optimizer.pt", "scheduler.pt", "rng_state.pth"}


def test_rotation_keeps_the_best_checkpoint_and_load_best_model_at_end(tmp_path) -> None:
    class WorseEachTime(Trainer):
        """An evaluation whose loss only rises, so the first checkpoint stays the best."""

        calls = 0

        def evaluate(self, *args, **kwargs):
            WorseEachTime.calls += 1
            metrics = {"eval_loss": float(WorseEachTime.calls)}
            self.control = self.callback_handler.on_evaluate(
                self.args, self.state, self.control, metrics
            )
            return metrics

    args = make_args(
        str(tmp_path),
        eval_strategy="steps",
        eval_steps=6,
        save_steps=6,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
    )
    model = make_model()
    trainer = WorseEachTime(
        model=model, args=args, train_dataset=CountingDataset(), eval_dataset=CountingDataset(8)
    )
    trainer.train()
    assert _steps(str(tmp_path)) == [6, 30]  # the best (6) and the newest
    assert trainer.state.best_model_checkpoint == str(tmp_path / "checkpoint-6")
    assert trainer.state.best_metric == 1.0
    best = make_model(5)
    load_weights(str(tmp_path / "checkpoint-6"), best)
    assert same_weights(weights(model), weights(best))


def test_save_strategy_best_saves_only_improvements(tmp_path) -> None:
    losses = iter([3.0, 2.0, 2.5, 1.0, 4.0])
    seen = []

    class Scripted(Trainer):
        def evaluate(self, *args, **kwargs):
            seen.append(self.state.global_step)
            metrics = {"eval_loss": next(losses, 9.0)}
            self.control = self.callback_handler.on_evaluate(
                self.args, self.state, self.control, metrics
            )
            return metrics

    args = make_args(
        str(tmp_path),
        eval_strategy="steps",
        eval_steps=6,
        save_strategy="best",
        metric_for_best_model="loss",
    )
    Scripted(model=make_model(), args=args, train_dataset=CountingDataset()).train()
    assert seen == [6, 12, 18, 24, 30]
    assert _steps(str(tmp_path)) == [6, 12, 24]


def test_save_model_for_plain_modules_and_from_pretrained(tmp_path) -> None:
    model = make_model()
    trainer = Trainer(model=model, args=make_args(str(tmp_path), save_safetensors=True))
    trainer.save_model(str(tmp_path / "plain"))
    from safetensors.torch import load_file

    reloaded = make_model(7)
    reloaded.load_state_dict(load_file(str(tmp_path / "plain" / "model.safetensors")))
    assert same_weights(weights(model), weights(reloaded))

    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=32, n_positions=16)
    lm = transformers.GPT2LMHeadModel(config)

    class Tokenizer:
        def save_pretrained(self, folder: str) -> None:
            with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as handle:
                handle.write("{}")

    trainer = Trainer(model=lm, args=make_args(str(tmp_path)), processing_class=Tokenizer())
    trainer.save_model(str(tmp_path / "lm"))
    again = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "lm"))
    assert same_weights(weights(lm), weights(again))
    assert (tmp_path / "lm" / "tokenizer.json").exists()
    assert (tmp_path / "lm" / "training_args.json").exists()


class MemoryStore:
    """A whole alternative store in a few lines: checkpoints kept in a dict.

    It proves the loop needs nothing but the port (trainer_core.CheckpointStore).
    """

    def __init__(self) -> None:
        self.saved: dict[str, dict] = {}
        self._rng = FolderCheckpointStore()

    def save(
        self,
        output_dir,
        step,
        content,
        *,
        process_index=0,
        is_writer=True,
        barrier=None,
        sharded_writer=None,
    ):
        import copy

        if sharded_writer is not None:
            raise TypeError("MemoryStore keeps full state dicts only, not per-process shards.")

        path = f"{output_dir}/checkpoint-{step}"
        from trainer_checkpoint import capture_rng_state

        self.saved[path] = {
            "model": copy.deepcopy(content.model.state_dict()),
            "optimizer": copy.deepcopy(content.optimizer.state_dict()),
            "scheduler": copy.deepcopy(content.scheduler.state_dict()),
            "state": copy.deepcopy(content.trainer_state),
            "rng": {**capture_rng_state(), **copy.deepcopy(dict(content.rng_extra))},
        }
        return path

    def save_model(self, output_dir, content) -> None:
        self.saved[output_dir] = {"model": content.model.state_dict()}

    def checkpoints(self, output_dir):
        found = [p for p in self.saved if p.startswith(f"{output_dir}/checkpoint-")]
        return sorted(found, key=lambda p: int(p.rsplit("-", 1)[1]))

    def latest(self, output_dir):
        found = self.checkpoints(output_dir)
        return found[-1] if found else None

    def rotate(self, output_dir, limit, *, keep=()):
        doomed = [p for p in self.checkpoints(output_dir)[:-limit] if p not in keep]
        for path in doomed:
            del self.saved[path]
        return doomed

    def load(self, checkpoint, content, *, process_index=0, map_location=None):
        from trainer_core import LoadedCheckpoint

        saved = self.saved[checkpoint]
        content.model.load_state_dict(saved["model"])
        content.optimizer.load_state_dict(saved["optimizer"])
        content.scheduler.load_state_dict(saved["scheduler"])
        return LoadedCheckpoint(checkpoint, saved["state"], None, saved["rng"])

    def is_sharded(self, checkpoint) -> bool:
        return False

    def load_model(self, checkpoint, model, *, map_location=None) -> None:
        model.load_state_dict(self.saved[checkpoint]["model"])

    def restore_rng(self, rng_state) -> None:
        self._rng.restore_rng(rng_state)


def test_a_swapped_store_receives_every_save_and_resumes_exactly(tmp_path) -> None:
    store = MemoryStore()
    assert isinstance(store, CheckpointStore)
    model = make_model()
    args = make_args(str(tmp_path / "mem"), save_total_limit=3)
    Trainer(model=model, args=args, train_dataset=CountingDataset(), checkpoint_store=store).train()
    assert [p.rsplit("-", 1)[1] for p in store.checkpoints(args.output_dir)] == ["26", "28", "30"]
    assert _steps(args.output_dir) == []  # nothing on disk
    resumed = make_model(9)
    trainer = Trainer(
        model=resumed, args=args, train_dataset=CountingDataset(), checkpoint_store=store
    )
    store.saved = {k: v for k, v in store.saved.items() if not k.endswith(("-28", "-30"))}
    trainer.train(resume_from_checkpoint=True)
    assert same_weights(weights(model), weights(resumed))


def test_rotation_after_a_resume_keeps_the_limit_as_the_reference(tmp_path) -> None:
    output_dir = str(tmp_path)
    _trainer(output_dir, save_steps=4, max_steps=8).train()
    assert _steps(output_dir) == [4, 8]
    trainer = _trainer(output_dir, save_steps=4, max_steps=16, save_total_limit=1)
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-4"))
    # The checkpoint resumed from is superseded by the newer ones this run writes.
    assert _steps(output_dir) == [16]


def test_the_loss_scaler_state_is_saved_and_given_back_on_resume(tmp_path) -> None:
    from trainer_dist import SingleProcessRuntime

    class ScaledRuntime(SingleProcessRuntime):
        """The CPU runtime with a stand-in fp16 scaler state (fp16 needs a GPU)."""

        restored: dict | None = None

        def scaler_state_dict(self):
            return {"scale": 1024.0, "growth_tracker": 3}

        def load_scaler_state_dict(self, state) -> None:
            ScaledRuntime.restored = dict(state)

    args = make_args(str(tmp_path), save_steps=10, max_steps=10)
    trainer = Trainer(
        model=make_model(),
        args=args,
        train_dataset=CountingDataset(),
        runtime=ScaledRuntime(device="cpu"),
    )
    trainer.train()
    assert (tmp_path / "checkpoint-10" / "scaler.pt").exists()
    args = make_args(str(tmp_path / "again"), max_steps=12)
    trainer = Trainer(
        model=make_model(),
        args=args,
        train_dataset=CountingDataset(),
        runtime=ScaledRuntime(device="cpu"),
    )
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-10"))
    assert ScaledRuntime.restored == {"scale": 1024.0, "growth_tracker": 3}
