"""The arguments hooks: called with the finished arguments, and only for DeepSpeed runs.

The hooks are real entry points of a throwaway distribution on ``sys.path``; the group
that trainer-args reads is pointed at a test group so that installed hooks (trainer-dist's
ZeRO-3 registration) stay out of these tests.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer_args import Seq2SeqTrainingArguments, TrainingArguments
from trainer_args._hooks import run_argument_hooks, wants_deepspeed
from trainer_core import ARGUMENTS_HOOKS_GROUP, PluginHookError

GROUP = "trainer.test_arguments_hooks"
STAGE_1 = {"zero_optimization": {"stage": 1}}


@pytest.fixture
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Install ``demo_argument_hooks`` (``record`` keeps what it saw); return its module."""
    (tmp_path / "demo_argument_hooks.py").write_text(
        textwrap.dedent(
            """\
            seen = []

            def record(args):
                seen.append((args, args.__dict__.get("_finalized"), args.deepspeed))
                args.recorded_by_hook = True
                return "recorded"

            def refuse(args):
                raise ValueError("this DeepSpeed config contradicts the arguments")
            """
        )
    )
    install(tmp_path, "record = demo_argument_hooks:record\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("trainer_args._hooks.ARGUMENTS_HOOKS_GROUP", GROUP)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    import demo_argument_hooks

    yield demo_argument_hooks
    sys.modules.pop("demo_argument_hooks", None)


def install(folder: Path, entry_points: str) -> None:
    dist_info = folder / "demo_argument_hooks-1.0.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-hooks\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[{GROUP}]\n{entry_points}")


def test_deepspeed_arguments_run_the_hooks_once_finished(hooks: Any) -> None:
    args = TrainingArguments("out", deepspeed=STAGE_1)
    assert hooks.seen == [(args, True, STAGE_1)]  # finished: every stage ran before
    assert args.recorded_by_hook
    assert "recorded_by_hook" not in args.to_dict()  # not an argument


def test_seq2seq_arguments_run_the_hooks_too(hooks: Any) -> None:
    args = Seq2SeqTrainingArguments("out", deepspeed=STAGE_1)
    assert [seen[0] for seen in hooks.seen] == [args]


def test_other_runs_do_not_run_the_hooks(hooks: Any) -> None:
    TrainingArguments("out")
    TrainingArguments("out", fsdp="full_shard")
    assert hooks.seen == []


def test_accelerate_launch_with_deepspeed_runs_the_hooks(
    hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    args = TrainingArguments("out")
    assert [seen[0] for seen in hooks.seen] == [args]


def test_the_group_is_trainer_cores() -> None:
    from trainer_args import _hooks

    assert _hooks.ARGUMENTS_HOOKS_GROUP == ARGUMENTS_HOOKS_GROUP


def test_wants_deepspeed() -> None:
    args = TrainingArguments("out")
    assert not wants_deepspeed(args, {})
    assert not wants_deepspeed(args, {"ACCELERATE_USE_DEEPSPEED": "false"})
    assert wants_deepspeed(args, {"ACCELERATE_USE_DEEPSPEED": "True"})
    args.deepspeed = STAGE_1
    assert wants_deepspeed(args, {})


def test_run_argument_hooks_returns_each_result(hooks: Any) -> None:
    args = TrainingArguments("out")
    assert run_argument_hooks(args, {}) == {}
    assert run_argument_hooks(args, {"ACCELERATE_USE_DEEPSPEED": "true"}) == {"record": "recorded"}


def test_an_error_of_a_hook_fails_the_construction(hooks: Any, tmp_path: Path) -> None:
    install(tmp_path, "refuse = demo_argument_hooks:refuse\n")
    with pytest.raises(ValueError, match="contradicts the arguments"):
        TrainingArguments("out", deepspeed=STAGE_1)


def test_a_hook_that_cannot_load_is_a_clear_error(hooks: Any, tmp_path: Path) -> None:
    install(tmp_path, "typo = demo_argument_hooks:recrod\n")
    with pytest.raises(PluginHookError, match=r"hook 'typo'.*from demo-hooks"):
        TrainingArguments("out", deepspeed=STAGE_1)


def test_a_hook_whose_package_is_gone_is_skipped(hooks: Any, tmp_path: Path) -> None:
    install(tmp_path, "gone = demo_removed_package:hook\nrecord = demo_argument_hooks:record\n")
    args = TrainingArguments("out", deepspeed=STAGE_1)
    assert [seen[0] for seen in hooks.seen] == [args]
