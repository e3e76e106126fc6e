"""TrainerState JSON files and TrainerControl switches."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import pytest

from trainer_core import EarlyStoppingCallback, ExportableState, TrainerControl, TrainerState

# A trainer_state.json as the v4.34 reference Trainer writes it (keys sorted, indent 2):
# no num_input_tokens_seen, best_global_step or stateful_callbacks yet.
REFERENCE_V4_34_STATE = """{
  "best_metric": 0.5123,
  "best_model_checkpoint": "out/checkpoint-8",
  "epoch": 3.0,
  "eval_steps": 4,
  "global_step": 12,
  "is_hyper_param_search": false,
  "is_local_process_zero": true,
  "is_world_process_zero": true,
  "log_history": [
    {"epoch": 1.0, "learning_rate": 3.3333333333333335e-05, "loss": 0.6931, "step": 4},
    {"epoch": 1.0, "eval_loss": 0.5123, "eval_runtime": 0.1, "step": 4},
    {"epoch": 3.0, "step": 12, "total_flos": 1234.0, "train_loss": 0.61, "train_runtime": 2.5}
  ],
  "logging_steps": 4,
  "max_steps": 12,
  "num_train_epochs": 3,
  "save_steps": 4,
  "total_flos": 1234.0,
  "train_batch_size": 8,
  "trial_name": null,
  "trial_params": null
}
"""

# The layout of newer upstream releases, with keys this version does not know.
NEWER_UPSTREAM_STATE = {
    "best_global_step": 8,
    "best_metric": 0.25,
    "best_model_checkpoint": "out/checkpoint-8",
    "epoch": 2.5,
    "eval_steps": 500,
    "global_step": 10,
    "is_hyper_param_search": False,
    "is_local_process_zero": True,
    "is_world_process_zero": True,
    "log_history": [],
    "logging_steps": 500,
    "max_steps": 12,
    "num_input_tokens_seen": 4096,
    "num_train_epochs": 3,
    "save_steps": 500,
    "stateful_callbacks": {
        "EarlyStoppingCallback": {
            "args": {"early_stopping_patience": 3, "early_stopping_threshold": 0.01},
            "attributes": {"early_stopping_patience_counter": 1},
        },
        "TrainerControl": {
            "args": {
                "should_epoch_stop": False,
                "should_evaluate": False,
                "should_log": False,
                "should_save": True,
                "should_training_stop": False,
            },
            "attributes": {},
        },
    },
    "total_flos": 5.5e12,
    "train_batch_size": 4,
    "trial_name": None,
    "trial_params": None,
    "some_future_field": {"x": 1},
}


def _rich_state() -> TrainerState:
    return TrainerState(
        epoch=1.75,
        global_step=7,
        max_steps=12,
        logging_steps=2,
        eval_steps=3,
        save_steps=4,
        train_batch_size=16,
        num_train_epochs=3,
        num_input_tokens_seen=123456,
        total_flos=3.0000000000000004e15,
        log_history=[{"loss": 0.1 + 0.2, "step": 2}, {"eval_acc": 1 / 3, "step": 3}],
        best_metric=1 / 3,
        best_global_step=3,
        best_model_checkpoint="out/checkpoint-3",
        is_local_process_zero=False,
        is_world_process_zero=False,
        is_hyper_param_search=True,
        trial_name="trial-7",
        trial_params={"learning_rate": 1e-4, "seed": 3, "warmup": True, "opt": "adamw"},
        stateful_callbacks=[TrainerControl(should_save=True), EarlyStoppingCallback(2, 0.5)],
    )


def test_defaults_match_a_fresh_training() -> None:
    state = TrainerState()
    assert (state.epoch, state.global_step, state.max_steps) == (0, 0, 0)
    assert (state.logging_steps, state.eval_steps, state.save_steps) == (500, 500, 500)
    assert state.log_history == [] and state.stateful_callbacks == {}
    assert state.is_local_process_zero and state.is_world_process_zero
    assert TrainerState().log_history is not state.log_history


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    state = _rich_state()
    path = tmp_path / "trainer_state.json"
    state.save_to_json(path)
    loaded = TrainerState.load_from_json(path)
    assert loaded == state
    assert dataclasses.asdict(loaded) == dataclasses.asdict(state)
    assert loaded.log_history[0]["loss"] == 0.1 + 0.2  # floats keep every bit


def test_json_uses_the_reference_keys_sorted_and_indented(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    TrainerState(global_step=3).save_to_json(str(path))
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert set(data) == {f.name for f in dataclasses.fields(TrainerState)}
    assert text.startswith('{\n  "best_global_step": null,') and text.endswith("}\n")


def test_save_replaces_atomically_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    TrainerState(global_step=1).save_to_json(path)
    TrainerState(global_step=2).save_to_json(path)
    assert TrainerState.load_from_json(path).global_step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trainer_state.json"]


def test_failed_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    TrainerState(global_step=1).save_to_json(path)
    broken = TrainerState(global_step=2, trial_params={"not json": object()})
    with pytest.raises(TypeError):
        broken.save_to_json(path)
    assert TrainerState.load_from_json(path).global_step == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trainer_state.json"]


def test_saved_file_mode_follows_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        TrainerState().save_to_json(tmp_path / "s.json")
    finally:
        os.umask(previous)
    assert (tmp_path / "s.json").stat().st_mode & 0o777 == 0o644


def test_loads_a_state_file_in_the_v4_34_reference_layout(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    path.write_text(REFERENCE_V4_34_STATE, encoding="utf-8")
    state = TrainerState.load_from_json(path)
    assert state.global_step == 12 and state.max_steps == 12 and state.epoch == 3.0
    assert state.best_model_checkpoint == "out/checkpoint-8" and state.best_metric == 0.5123
    assert state.log_history[1]["eval_loss"] == 0.5123
    assert state.train_batch_size == 8
    assert state.num_input_tokens_seen == 0 and state.best_global_step is None
    assert state.stateful_callbacks == {}
    # Saving again keeps every value the reference wrote.
    state.save_to_json(path)
    rewritten = json.loads(path.read_text(encoding="utf-8"))
    original = json.loads(REFERENCE_V4_34_STATE)
    assert {key: rewritten[key] for key in original} == original


def test_unknown_keys_are_ignored_with_a_debug_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(NEWER_UPSTREAM_STATE), encoding="utf-8")
    with caplog.at_level(logging.DEBUG, logger="trainer_core._state"):
        state = TrainerState.load_from_json(path)
    assert "some_future_field" in caplog.text
    assert state.num_input_tokens_seen == 4096 and state.best_global_step == 8
    control = TrainerControl.from_state(state.stateful_callbacks["TrainerControl"])
    assert control == TrainerControl(should_save=True)
    stopper = EarlyStoppingCallback.from_state(state.stateful_callbacks["EarlyStoppingCallback"])
    assert stopper.early_stopping_patience == 3
    assert stopper.early_stopping_patience_counter == 1


def test_a_file_that_is_not_a_json_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="JSON list"):
        TrainerState.load_from_json(path)


def test_stateful_callbacks_are_exported_by_class_name() -> None:
    first, second = EarlyStoppingCallback(1), EarlyStoppingCallback(5)
    state = TrainerState(stateful_callbacks=[TrainerControl(), first, second])
    assert state.stateful_callbacks["TrainerControl"]["attributes"] == {}
    assert [
        s["args"]["early_stopping_patience"]
        for s in state.stateful_callbacks["EarlyStoppingCallback"]
    ] == [1, 5]


def test_a_callback_without_exportable_state_is_refused() -> None:
    with pytest.raises(TypeError, match="ExportableState"):
        TrainerState(stateful_callbacks=[object()])


def test_exportable_state_requires_state_method() -> None:
    with pytest.raises(NotImplementedError, match="state"):
        ExportableState().state()


def test_compute_steps_resolves_ratios_against_max_steps() -> None:
    class Args:
        logging_steps = 0.1
        eval_steps = None
        save_steps = 250

    state = TrainerState(eval_steps=7)
    state.compute_steps(Args(), max_steps=95)
    assert (state.logging_steps, state.eval_steps, state.save_steps) == (10, 7, 250)


def test_control_resets_touch_only_their_switches() -> None:
    control = TrainerControl(True, True, True, True, True)
    control._new_step()
    assert control == TrainerControl(should_training_stop=True, should_epoch_stop=True)
    control._new_epoch()
    assert control == TrainerControl(should_training_stop=True)
    control._new_training()
    assert control == TrainerControl()


def test_control_state_round_trips() -> None:
    control = TrainerControl(should_log=True, should_epoch_stop=True)
    exported = control.state()
    assert exported == {
        "args": {
            "should_training_stop": False,
            "should_epoch_stop": True,
            "should_save": False,
            "should_evaluate": False,
            "should_log": True,
        },
        "attributes": {},
    }
    assert TrainerControl.from_state(json.loads(json.dumps(exported))) == control


class _ForeignMixin:
    """Stands for the reference library's own ExportableState: same methods, no relation."""

    def state(self) -> dict:
        return {"args": {"patience": self.patience}, "attributes": {"count": self.count}}

    @classmethod
    def from_state(cls, state: dict) -> _ForeignMixin:
        return cls(**state["args"])


class _ForeignStopper(_ForeignMixin):
    def __init__(self, patience: int = 1) -> None:
        self.patience, self.count = patience, 2


def test_a_class_defining_state_and_from_state_counts_as_exportable() -> None:
    # Without this, callbacks built on the reference mixin are left out of checkpoints.
    assert isinstance(_ForeignStopper(), ExportableState)
    assert issubclass(_ForeignStopper, ExportableState)
    state = TrainerState(stateful_callbacks=[_ForeignStopper(3)])
    assert state.stateful_callbacks == {
        "_ForeignStopper": {"args": {"patience": 3}, "attributes": {"count": 2}}
    }


def test_state_alone_or_a_state_attribute_is_not_exportable() -> None:
    class OnlyState:
        def state(self) -> dict:
            return {}

    class OptedOut(_ForeignMixin):
        from_state = None

    holder = OnlyState()
    holder.from_state = lambda state: state  # an instance attribute is not a class API
    assert not isinstance(holder, ExportableState)
    assert not isinstance(OptedOut(), ExportableState)
    assert not issubclass(TrainerState, ExportableState)
