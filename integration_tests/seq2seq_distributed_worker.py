"""The script test_seq2seq_distributed.py launches with ``torchrun`` (not a test module).

Each process runs one scenario and writes what it observed to ``<out>/rank<N>.json``:

* ``generate``: a tiny T5 sharded with FSDP2 (``fsdp="full_shard auto_wrap"``) predicts
  an odd-sized evaluation set with ``predict_with_generate``. The processes are made to
  finish generating at different steps (``max_new_tokens`` differs by rank, as different
  end-of-sequence positions would), so generation only ends if every process keeps
  joining the others' forward passes (``synced_gpus``). Before sharding, each process
  also generates every sample with the whole model, as the reference to compare with.
* ``sortish``: DDP training from ``sortish_sampler=True``; records the sample ids of each
  batch this process trained on.

``all`` runs both in one launch (starting the processes costs more than either).

    torchrun --nproc_per_node 2 seq2seq_distributed_worker.py all <out>
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

VOCAB, PAD, EOS = 24, 0, 1
EVAL_SIZE = 5  # odd: with batches of 2 on 2 processes, the last global step is uneven
MAX_NEW_TOKENS = (2, 5)  # by rank: rank 0 finishes generating 3 steps before rank 1


def tiny_t5() -> Any:
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
        initializer_factor=5.0,  # untrained, but generating varied tokens rather than pads
    )
    return transformers.T5ForConditionalGeneration(config)


def sources(size: int = EVAL_SIZE) -> list[dict[str, torch.Tensor]]:
    """Token sequences of different lengths (never containing EOS) with copy targets."""
    generator = torch.Generator().manual_seed(7)
    items = []
    for index in range(size):
        length = 2 + index % 3
        tokens = torch.randint(3, VOCAB, (length,), generator=generator)
        items.append({"input_ids": tokens, "labels": tokens.clone(), "index": torch.tensor(index)})
    return items


def collate(features: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    width = max(len(f["input_ids"]) for f in features)
    input_ids = torch.full((len(features), width), PAD)
    attention = torch.zeros((len(features), width), dtype=torch.long)
    labels = torch.full((len(features), width), -100)
    for row, feature in enumerate(features):
        length = len(feature["input_ids"])
        input_ids[row, :length] = feature["input_ids"]
        attention[row, :length] = 1
        labels[row, :length] = feature["labels"]
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def arguments(out: str, **overrides: Any) -> Any:
    from trainer import Seq2SeqTrainingArguments

    values: dict[str, Any] = {
        "output_dir": out,
        "per_device_eval_batch_size": 2,
        "per_device_train_batch_size": 2,
        "predict_with_generate": True,
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        "save_strategy": "no",
        "seed": 0,
        "ddp_timeout": 60,  # a hung collective ends the processes instead of leaving them
    }
    values.update(overrides)
    return Seq2SeqTrainingArguments(**values)


def reference_generations(model: Any) -> list[list[int]]:
    """Every sample generated alone by the whole (unsharded) model, greedy."""
    generated = []
    with torch.no_grad():
        for item in sources():
            ids = item["input_ids"][None]
            tokens = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max(MAX_NEW_TOKENS),
            )
            generated.append(tokens[0].tolist())
    return generated


def run_generate(out: str, rank: int, synced: bool | None) -> dict[str, Any]:
    from trainer import Seq2SeqTrainer, TrainerCallback

    class CountSteps(TrainerCallback):
        steps = 0

        def on_prediction_step(self, args, state, control, **kwargs):
            CountSteps.steps += 1

    model = tiny_t5()
    reference = reference_generations(model)
    decoder_calls: list[int] = []
    model.decoder.register_forward_hook(lambda *_: decoder_calls.append(1))
    args = arguments(out, fsdp="full_shard auto_wrap", remove_unused_columns=False)
    trainer = Seq2SeqTrainer(model=model, args=args, data_collator=collate, callbacks=[CountSteps])
    gen_kwargs: dict[str, Any] = {"max_new_tokens": MAX_NEW_TOKENS[rank]}
    if synced is not None:
        gen_kwargs["synced_gpus"] = synced
    output = trainer.predict(sources(), **gen_kwargs)
    return {
        "runtime": type(trainer.runtime).__name__,
        "shards_parameters": trainer.runtime.shards_parameters,
        "parameter_types": sorted({type(p).__name__ for p in model.parameters()}),
        "predictions": output.predictions.tolist(),
        "label_ids": output.label_ids.tolist(),
        "prediction_steps": CountSteps.steps,
        "decoder_calls": len(decoder_calls),
        "reference": reference,
    }


def run_sortish(out: str) -> dict[str, Any]:
    from trainer import Seq2SeqTrainer

    class Summer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(1))

        def forward(self, input_ids: torch.Tensor, index: torch.Tensor) -> dict:
            return {"loss": (self.weight * input_ids.float()).mean()}

    lengths = [
        int(n) for n in torch.randint(1, 60, (40,), generator=torch.Generator().manual_seed(3))
    ]
    dataset = [{"input_ids": list(range(n)), "index": i} for i, n in enumerate(lengths)]
    batches: list[list[int]] = []

    def collate_ids(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batches.append([row["index"] for row in rows])
        width = max(len(row["input_ids"]) for row in rows)
        ids = torch.tensor(
            [row["input_ids"] + [0] * (width - len(row["input_ids"])) for row in rows]
        )
        return {"input_ids": ids, "index": torch.tensor([row["index"] for row in rows])}

    args = arguments(out, sortish_sampler=True, num_train_epochs=1, per_device_train_batch_size=4)
    trainer = Seq2SeqTrainer(
        model=Summer(), args=args, train_dataset=dataset, data_collator=collate_ids
    )
    trainer.train()
    return {
        "batches": batches,
        "lengths": lengths,
        "sampler": type(trainer._train_sampler).__name__,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["generate", "sortish", "all"])
    parser.add_argument("out")
    parser.add_argument("--synced", choices=["auto", "true", "false"], default="auto")
    options = parser.parse_args()
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    result: dict[str, Any] = {}
    if options.scenario in ("generate", "all"):
        synced = None if options.synced == "auto" else options.synced == "true"
        result["generate"] = run_generate(os.path.join(options.out, "generate"), rank, synced)
    if options.scenario in ("sortish", "all"):
        result["sortish"] = run_sortish(os.path.join(options.out, "sortish"))
    Path(options.out, f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    from _worker_exit import leave_group_and_exit

    main()
    leave_group_and_exit()
