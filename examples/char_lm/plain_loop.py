"""Train the example model with a hand-written torch loop, no Trainer.

This is the baseline the Trainer version is measured against: the same data, model,
optimizer (AdamW), schedule (linear warm-up, then linear decay to zero) and gradient
clipping (norm 1.0, the Trainer's `max_grad_norm`) as the defaults of
`train_char_lm.py`, written the way one would write it by hand. It prints the loss at the
first and last step, the held-out loss and the time the steps took.

Run from the repository root:

    python examples/char_lm/plain_loop.py --max_steps 200
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

if __package__:
    from .corpus import build_datasets
    from .model import CharLMConfig, CharTransformer
else:  # run as a script (`python examples/char_lm/...py`): its folder is on sys.path
    from corpus import build_datasets
    from model import CharLMConfig, CharTransformer

__all__ = ["train_plain"]


def _batches(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        yield from loader


def _linear_schedule(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def train_plain(
    max_steps: int = 200,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    warmup_steps: int = 30,
    block_size: int = 64,
    n_layer: int = 3,
    n_head: int = 4,
    n_embd: int = 96,
    seed: int = 42,
) -> dict[str, float]:
    """Train from scratch for `max_steps` steps and report the figures.

    Returns:
        `first_loss` and `last_loss` (training loss of the first and last batch),
        `eval_loss` (mean loss over the held-out windows after training) and `seconds`
        (wall time of the training steps, data loading included, set-up excluded).
    """
    torch.manual_seed(seed)
    vocab, train_set, eval_set = build_datasets(block_size)
    config = CharLMConfig(len(vocab), block_size, n_layer, n_head, n_embd)
    model = CharTransformer(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _linear_schedule(step, warmup_steps, max_steps)
    )
    batches = _batches(DataLoader(train_set, batch_size=batch_size, shuffle=True))
    model.train()
    start = time.perf_counter()
    for step in range(max_steps):
        loss = model(**next(batches))["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 0:
            first_loss = loss.item()
    seconds = time.perf_counter() - start
    return {
        "first_loss": first_loss,
        "last_loss": loss.item(),
        "eval_loss": _eval_loss(model, eval_set, batch_size),
        "seconds": seconds,
    }


@torch.no_grad()
def _eval_loss(model: CharTransformer, eval_set: torch.utils.data.Dataset, batch: int) -> float:
    model.eval()
    losses = [model(**b)["loss"].item() for b in DataLoader(eval_set, batch_size=batch)]
    return sum(losses) / len(losses)


def main() -> None:
    """Parse `--max_steps` and friends, train, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--block_size", type=int, default=64)
    parser.add_argument("--n_layer", type=int, default=3)
    parser.add_argument("--n_embd", type=int, default=96)
    args = parser.parse_args()
    figures = train_plain(
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_embd=args.n_embd,
    )
    print(
        f"{args.max_steps} steps in {figures['seconds']:.1f} s: train loss "
        f"{figures['first_loss']:.3f} -> {figures['last_loss']:.3f}, "
        f"eval loss {figures['eval_loss']:.3f}"
    )


if __name__ == "__main__":
    main()
