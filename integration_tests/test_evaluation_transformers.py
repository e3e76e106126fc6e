"""Evaluation of real transformers models (tiny configs): padding across batches, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from trainer import Trainer, TrainingArguments  # noqa: E402

NUM_LABELS, VOCAB = 5, 40


class Sentences(torch.utils.data.Dataset):
    """Token sequences whose lengths grow with the index, so each batch has its own width."""

    def __init__(self, lengths: list[int], labels: list[list[int]] | None = None) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = [torch.randint(1, VOCAB, (n,), generator=generator).tolist() for n in lengths]
        self.labels = labels or [[i % NUM_LABELS for i in ids] for ids in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def collate(features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.zeros((len(features), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        ids[row, :n] = torch.tensor(feature["input_ids"])
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(feature["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _tagger() -> transformers.BertForTokenClassification:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=NUM_LABELS,
    )
    return transformers.BertForTokenClassification(config)


def _args(output_dir: str, **overrides) -> TrainingArguments:
    defaults = dict(
        output_dir=output_dir,
        per_device_eval_batch_size=3,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    defaults.update(overrides)
    return TrainingArguments(**defaults)


def token_accuracy(prediction) -> dict[str, float]:
    logits, labels = prediction
    real = labels != -100
    return {"accuracy": float((logits.argmax(-1)[real] == labels[real]).mean())}


LENGTHS = [2, 3, 3, 5, 6, 6, 9, 4]  # batches of 3: widths 3, 6, 9 (the last: 9 and 4)


def test_token_classification_batches_of_different_widths_are_padded_with_minus_100(
    tmp_output,
) -> None:
    trainer = Trainer(model=_tagger(), args=_args(tmp_output), data_collator=collate)
    output = trainer.predict(Sentences(LENGTHS))
    assert output.predictions.shape == (8, 9, NUM_LABELS)
    assert output.label_ids.shape == (8, 9)
    # First batch was 3 wide: beyond column 3 its logits and labels are -100 padding.
    assert (output.predictions[:3, 3:] == -100).all()
    assert (output.label_ids[:3, 3:] == -100).all()
    # Inside a batch the collator padded labels with -100 too (row 0 has 2 tokens).
    assert (output.label_ids[0, 2:] == -100).all()
    assert (output.predictions[0, 2] != -100).all()  # the model's logits at a pad token
    # Real positions hold what the model computes on that batch alone.
    batch = collate([Sentences(LENGTHS)[i] for i in range(3, 6)])
    with torch.no_grad():
        expected = trainer.model(**batch).logits.numpy()
    np.testing.assert_allclose(output.predictions[3:6, :6], expected, rtol=1e-5, atol=1e-6)
    for row, length in enumerate(LENGTHS):
        assert (output.label_ids[row, :length] != -100).all()


def test_compute_metrics_accuracy_matches_the_known_answer(tmp_output) -> None:
    model = _tagger()
    trainer = Trainer(
        model=model,
        args=_args(tmp_output),
        data_collator=collate,
        compute_metrics=token_accuracy,
    )
    predicted = trainer.predict(Sentences(LENGTHS)).predictions.argmax(-1)
    # Labels agreeing with the model on exactly the first 3 tokens of every sentence.
    labels = [
        [
            int(predicted[row, i]) if i < 3 else (int(predicted[row, i]) + 1) % NUM_LABELS
            for i in range(n)
        ]
        for row, n in enumerate(LENGTHS)
    ]
    right = sum(min(n, 3) for n in LENGTHS)
    metrics = trainer.evaluate(Sentences(LENGTHS, labels))
    assert metrics["eval_accuracy"] == pytest.approx(right / sum(LENGTHS))
    assert metrics["eval_loss"] > 0
    assert metrics["eval_samples_per_second"] > 0


def test_causal_lm_past_key_values_are_not_collected(tmp_output) -> None:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=16
    )
    model = transformers.GPT2LMHeadModel(config)
    dataset = [{"input_ids": list(range(1, 9)), "labels": list(range(1, 9))} for _ in range(4)]
    trainer = Trainer(model=model, args=_args(tmp_output), data_collator=collate)
    output = trainer.predict(dataset)
    assert isinstance(output.predictions, np.ndarray)  # the logits only, no cache
    assert output.predictions.shape == (4, 8, VOCAB)
