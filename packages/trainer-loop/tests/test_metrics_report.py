"""log_metrics / metrics_format / save_metrics / save_state: the reference's formats and files."""

from __future__ import annotations

import json

import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import Trainer
from trainer_loop._metrics_report import metrics_format, metrics_table


class Line(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        return {"logits": self.w * x}


def _trainer(tmp_path, **overrides) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        **overrides,
    )
    return Trainer(model=Line(), args=args)


def test_metrics_format_makes_memory_runtime_flos_and_floats_readable() -> None:
    formatted = metrics_format(
        {
            "train_mem_cpu_alloc_delta": 5 * 2**20 + 123,
            "eval_runtime": 3723.456,
            "total_flos": 3 * 2**30,
            "eval_loss": 0.123456789,
            "epoch": 2,
            "note": "text",
        }
    )
    assert formatted == {
        "train_mem_cpu_alloc_delta": "5MB",
        "eval_runtime": "1:02:03.45",
        "total_flos": "3GF",
        "eval_loss": 0.1235,
        "epoch": 2,
        "note": "text",
    }


def test_the_table_is_sorted_and_aligned() -> None:
    table = metrics_table("eval", {"eval_loss": 0.5, "epoch": 1.0, "eval_samples_per_second": 10.0})
    assert table.splitlines() == [
        "***** eval metrics *****",
        "  epoch                   =  1.0",
        "  eval_loss               =  0.5",
        "  eval_samples_per_second = 10.0",
    ]


def test_log_metrics_prints_the_table_through_an_overridable_metrics_format(
    tmp_path, capsys
) -> None:
    class Shouting(Trainer):
        def metrics_format(self, metrics):
            return {key.upper(): value for key, value in metrics.items()}

    trainer = _trainer(tmp_path)
    trainer.log_metrics("train", {"train_loss": 0.25})
    assert capsys.readouterr().out == "***** train metrics *****\n  train_loss = 0.25\n"
    shouting = Shouting(model=Line(), args=trainer.args)
    shouting.log_metrics("eval", {"eval_loss": 1})
    assert "EVAL_LOSS = 1" in capsys.readouterr().out


def test_save_metrics_writes_the_split_file_and_merges_all_results(tmp_path) -> None:
    trainer = _trainer(tmp_path)
    trainer.save_metrics("train", {"train_loss": 0.5, "epoch": 1.0})
    trainer.save_metrics("eval", {"eval_loss": 0.25, "epoch": 2.0})
    trainer.save_metrics("test", {"test_loss": 0.125}, combined=False)
    out = tmp_path / "out"
    assert json.loads((out / "train_results.json").read_text()) == {
        "epoch": 1.0,
        "train_loss": 0.5,
    }
    assert json.loads((out / "test_results.json").read_text()) == {"test_loss": 0.125}
    assert json.loads((out / "all_results.json").read_text()) == {
        "train_loss": 0.5,
        "eval_loss": 0.25,
        "epoch": 2.0,  # a later split's value replaces the earlier one
    }
    assert not list(out.glob("*.tmp"))


def test_save_state_writes_trainer_state_json(tmp_path) -> None:
    trainer = _trainer(tmp_path)
    trainer.state.global_step = 7
    trainer.state.log_history.append({"loss": 1.5, "step": 7})
    trainer.save_state()
    saved = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert saved["global_step"] == 7
    assert saved["log_history"] == [{"loss": 1.5, "step": 7}]
