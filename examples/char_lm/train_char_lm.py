"""Train a small character-level transformer on public-domain texts with `trainer`.

Run from the repository root (about a minute on two CPU cores):

    python examples/char_lm/train_char_lm.py

Any `TrainingArguments` or model/data option can be given on the command line and
overrides the example's defaults, e.g.

    python examples/char_lm/train_char_lm.py --max_steps 200 --output_dir /tmp/char_lm
    python examples/char_lm/train_char_lm.py --help

The script is written the way a user of the reference API writes one: options parsed by
`HfArgumentParser` into a dataclass of its own plus `TrainingArguments`, a plain torch
model handed to `Trainer`, then `train()`, `evaluate()` and `save_model()`. Next to the
weights it saves the vocabulary (`vocab.json`) and the model shape
(`char_lm_config.json`); it then reloads the model from the output folder, as a user of
the saved model would, and prints a sample of generated text.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainer import HfArgumentParser, Trainer, TrainingArguments

if __package__:
    from .corpus import DEFAULT_DATA_DIR, CharVocab, build_datasets
    from .model import CharLMConfig, CharTransformer
else:  # run as a script (`python examples/char_lm/...py`): its folder is on sys.path
    from corpus import DEFAULT_DATA_DIR, CharVocab, build_datasets
    from model import CharLMConfig, CharTransformer

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_TRAINING_ARGS",
    "VOCAB_NAME",
    "CharLMArguments",
    "load_trained",
    "main",
    "parse_arguments",
]

VOCAB_NAME = "vocab.json"
CONFIG_NAME = "char_lm_config.json"

DEFAULT_TRAINING_ARGS: tuple[str, ...] = (
    "--output_dir", "output/char_lm",
    "--max_steps", "800",
    "--per_device_train_batch_size", "32",
    "--per_device_eval_batch_size", "64",
    "--learning_rate", "3e-3",
    "--warmup_steps", "30",
    "--logging_steps", "20",
    "--logging_first_step", "True",
    "--save_strategy", "no",
    "--report_to", "none",
    "--seed", "42",
)  # fmt: skip
"""Command-line defaults of the example, placed before the user's arguments.

`argparse` keeps the last value given for an option, so anything on the command line
overrides these. They are chosen to finish in about a minute on two CPU cores.
"""


@dataclass
class CharLMArguments:
    """Model and data options of the example (the rest is `TrainingArguments`)."""

    data_dir: str = field(
        default=str(DEFAULT_DATA_DIR),
        metadata={"help": "Folder of .txt files, each starting with a '#' header line."},
    )
    block_size: int = field(default=64, metadata={"help": "Characters per training window."})
    n_layer: int = field(default=3, metadata={"help": "Number of transformer blocks."})
    n_head: int = field(default=4, metadata={"help": "Attention heads; must divide n_embd."})
    n_embd: int = field(default=96, metadata={"help": "Width of the residual stream."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout probability."})
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Share of every text held out for evaluation."}
    )
    train_stride: int = field(
        default=1, metadata={"help": "Distance between the starts of training windows."}
    )
    sample_prompt: str = field(
        default="The ", metadata={"help": "Text the printed sample starts from."}
    )
    sample_length: int = field(
        default=300, metadata={"help": "Characters to generate after the prompt."}
    )
    sample_temperature: float = field(
        default=0.8, metadata={"help": "Sampling temperature (> 0); lower is safer."}
    )


def parse_arguments(
    argv: Sequence[str] | None = None,
) -> tuple[CharLMArguments, TrainingArguments]:
    """Parse `argv` (default: `sys.argv[1:]`) on top of `DEFAULT_TRAINING_ARGS`."""
    user_args = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(
        (CharLMArguments, TrainingArguments),
        description="Train a character-level transformer on the example's texts.",
        epilog="Defaults of this example, overridden by anything given on the command line: "
        + " ".join(DEFAULT_TRAINING_ARGS),
    )
    model_args, training_args = parser.parse_args_into_dataclasses(
        args=[*DEFAULT_TRAINING_ARGS, *user_args]
    )
    return model_args, training_args


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train, evaluate, save, reload and sample; return the evaluation metrics.

    Args:
        argv: Command-line arguments without the program name; `sys.argv[1:]` if None.

    Returns:
        The metrics of the final `trainer.evaluate()`, plus `perplexity`.
    """
    model_args, training_args = parse_arguments(argv)
    torch.manual_seed(training_args.seed)  # the model is built before the Trainer seeds
    vocab, train_set, eval_set = build_datasets(
        block_size=model_args.block_size,
        data_dir=model_args.data_dir,
        eval_fraction=model_args.eval_fraction,
        train_stride=model_args.train_stride,
    )
    config = CharLMConfig(
        vocab_size=len(vocab),
        block_size=model_args.block_size,
        n_layer=model_args.n_layer,
        n_head=model_args.n_head,
        n_embd=model_args.n_embd,
        dropout=model_args.dropout,
    )
    _check_sample_options(model_args, vocab)
    model = CharTransformer(config)
    print(
        f"Data: {len(vocab)} distinct characters, {len(train_set):,} training windows, "
        f"{len(eval_set):,} evaluation windows of {config.block_size} characters. "
        f"Model: {model.num_parameters():,} parameters."
    )
    trainer = Trainer(
        model=model, args=training_args, train_dataset=train_set, eval_dataset=eval_set
    )
    # As in the reference's scripts: the argument is the script's to pass on to train().
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    metrics = dict(trainer.evaluate())
    metrics["perplexity"] = math.exp(metrics["eval_loss"])
    trainer.save_model()
    if trainer.is_world_process_zero():
        _report(training_args.output_dir, vocab, config, model_args, metrics)
    return metrics


def _report(
    output_dir: str,
    vocab: CharVocab,
    config: CharLMConfig,
    model_args: CharLMArguments,
    metrics: dict[str, float],
) -> None:
    """Save the vocabulary and config, reload the model from disk and print a sample."""
    out = Path(output_dir).resolve()
    vocab.save(out / VOCAB_NAME)
    (out / CONFIG_NAME).write_text(json.dumps(config.to_dict(), indent=2))
    reloaded, reloaded_vocab = load_trained(out)
    sample = _sample(reloaded, reloaded_vocab, model_args)
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    print(f"\nEvaluation loss {metrics['eval_loss']:.3f} (perplexity {metrics['perplexity']:.2f}).")
    print(f"Model, vocabulary and config saved to {out}\n  ({files})")
    print(f"\nSample from the reloaded model, starting from {model_args.sample_prompt!r}:\n")
    print(sample)


def _check_sample_options(model_args: CharLMArguments, vocab: CharVocab) -> None:
    """Reject a sample prompt or temperature that would fail only after training."""
    if not model_args.sample_prompt:
        raise ValueError("--sample_prompt is empty; pass at least one character, e.g. 'The '.")
    vocab.encode(model_args.sample_prompt)  # raises on characters the texts do not contain
    if model_args.sample_temperature <= 0 or model_args.sample_length < 0:
        raise ValueError(
            f"--sample_temperature must be > 0 and --sample_length >= 0, got "
            f"{model_args.sample_temperature} and {model_args.sample_length}."
        )


def _sample(model: CharTransformer, vocab: CharVocab, model_args: CharLMArguments) -> str:
    prompt = torch.tensor([vocab.encode(model_args.sample_prompt)], dtype=torch.long)
    generator = torch.Generator().manual_seed(0)
    ids = model.generate(
        prompt,
        max_new_tokens=model_args.sample_length,
        temperature=model_args.sample_temperature,
        generator=generator,
    )
    return vocab.decode(ids[0].tolist())


def load_trained(output_dir: str | Path) -> tuple[CharTransformer, CharVocab]:
    """Rebuild the trained model (on CPU, in eval mode) and its vocabulary from disk.

    Reads `char_lm_config.json`, `vocab.json` and the weights `Trainer.save_model` wrote:
    `model.safetensors`, or `pytorch_model.bin` (loaded with `weights_only=True`).

    Raises:
        FileNotFoundError: If the folder lacks the config, the vocabulary or the weights.
    """
    folder = Path(output_dir)
    for name in (CONFIG_NAME, VOCAB_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} is missing; pass the output_dir of a finished "
                "train_char_lm.py run."
            )
    config = CharLMConfig.from_dict(json.loads((folder / CONFIG_NAME).read_text()))
    model = CharTransformer(config)
    model.load_state_dict(_read_weights(folder))
    return model.eval(), CharVocab.load(folder / VOCAB_NAME)


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(
        f"No model.safetensors or pytorch_model.bin in {folder}; pass the output_dir of a "
        "finished train_char_lm.py run (Trainer.save_model writes one of them)."
    )


if __name__ == "__main__":
    main()
