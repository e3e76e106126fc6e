"""Real transformers models, built from tiny configs, trained by our Trainer."""

from __future__ import annotations

from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

from trainer import Trainer, TrainingArguments  # noqa: E402
from trainer_testing.language import padded_token_sequences, tiny_llama  # noqa: E402


def _args(output_dir: str, **overrides) -> TrainingArguments:
    defaults = dict(
        output_dir=output_dir,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=5,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    defaults.update(overrides)
    return TrainingArguments(**defaults)


def _logged_losses(trainer: Trainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def _classification_data(size: int = 96, vocab: int = 50, length: int = 12) -> datasets.Dataset:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, vocab, (size, length), generator=generator)
    labels = (input_ids[:, 0] > vocab // 2).long()  # learnable: class depends on token 0
    return datasets.Dataset.from_dict(
        {
            "input_ids": input_ids.tolist(),
            "attention_mask": torch.ones_like(input_ids).tolist(),
            "label": labels.tolist(),
            "text": [f"example {i}" for i in range(size)],  # an extra column to drop
            "source": ["synthetic"] * size,
        }
    )


def test_sequence_classifier_learns_and_extra_columns_are_dropped(tmp_output, caplog) -> None:
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
    )
    model = transformers.BertForSequenceClassification(config)
    dataset = _classification_data()
    caplog.set_level("INFO")
    trainer = Trainer(
        model=model,
        args=_args(tmp_output, num_train_epochs=8, learning_rate=3e-3),
        train_dataset=dataset,
        eval_dataset=dataset,
    )
    result = trainer.train()
    losses = _logged_losses(trainer)
    assert losses[-1] < losses[0] * 0.8, losses
    assert result.global_step == 8 * 96 // 8
    assert "text" in caplog.text and "source" in caplog.text
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] < 0.6


def test_causal_lm_learns_a_repeating_sequence(tmp_output) -> None:
    config = transformers.GPT2Config(
        vocab_size=16,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=2,
    )
    model = transformers.GPT2LMHeadModel(config)
    pattern = torch.arange(16).repeat(2)[:24]
    rows = [torch.roll(pattern, shifts=i).tolist() for i in range(64)]
    dataset = datasets.Dataset.from_dict({"input_ids": rows, "labels": rows})
    trainer = Trainer(
        model=model,
        args=_args(tmp_output, num_train_epochs=10, learning_rate=5e-3),
        train_dataset=dataset,
    )
    trainer.train()
    losses = _logged_losses(trainer)
    assert losses[-1] < losses[0] * 0.5, losses


def _accumulation_gap(tmp_output, build_model, dataset, runs, steps: int) -> float:
    """Largest weight difference between SGD runs that differ only in how each global
    batch is split, ``runs`` = ((batch, accumulation), (batch, accumulation))."""
    weights = []
    for batch, accumulation in runs:
        model = build_model()
        args = _args(
            tmp_output,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            optim="sgd",
            learning_rate=0.5,
            max_grad_norm=0.0,  # clipping would hide a wrong scale
            max_steps=steps,
        )
        Trainer(model=model, args=args, train_dataset=dataset).train()
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    return max((weights[0][k] - weights[1][k]).abs().max().item() for k in weights[0])


def test_accumulated_micro_batches_of_uneven_length_train_like_the_whole_batch(
    tmp_output,
) -> None:
    """Each micro-batch's loss is weighted by its share of the window's scored tokens
    (counted after the causal LM's shift), so 2 micro-batches of 2 give the gradient of
    one batch of 4 exactly; averaging the two micro-batch means would not."""
    dataset = padded_token_sequences(8, 10, 32, seed=5)
    gap = _accumulation_gap(tmp_output, lambda: tiny_llama(32, 16), dataset, ((4, 1), (2, 2)), 2)
    assert gap < 1e-6


def test_a_classifier_ignoring_the_item_count_accumulates_like_the_whole_batch(
    tmp_output,
) -> None:
    """BERT's classifier types ``**kwargs`` with ``num_items_in_batch`` (every transformers
    5 model does) but computes a plain mean loss: taking the typing as a promise would
    sum, not average, the accumulated micro-batch losses and double the step. 2
    micro-batches of 4 must give the step of one batch of 8."""
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip

    def build() -> Any:
        torch.manual_seed(0)
        return transformers.BertForSequenceClassification(config)

    dataset = _classification_data(size=8).remove_columns(["text", "source"])
    assert _accumulation_gap(tmp_output, build, dataset, ((8, 1), (4, 2)), 1) < 1e-6


def test_gpt2_counts_as_a_causal_lm() -> None:
    from trainer_loop._inputs import is_causal_lm, model_accepts_loss_kwargs

    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=8, n_layer=1, n_head=2))
    assert is_causal_lm(model)
    assert is_causal_lm(tiny_llama(32, 16))
    # Both pass their **kwargs on to self.loss_function, which divides by the count.
    assert model_accepts_loss_kwargs(tiny_llama(32, 16)) and model_accepts_loss_kwargs(model)
    bert = transformers.BertConfig(
        vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16,
    )  # fmt: skip
    assert not model_accepts_loss_kwargs(transformers.BertForSequenceClassification(bert))
