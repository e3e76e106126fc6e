"""Seq2SeqTrainer with a real T5 built from a tiny config: train, then evaluate by generating."""

from __future__ import annotations

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from trainer import Seq2SeqTrainer, Seq2SeqTrainingArguments  # noqa: E402

VOCAB, PAD, EOS = 24, 0, 1


class CopyTask(torch.utils.data.Dataset):
    """Copy a short sequence of tokens; source lengths vary so batches need padding."""

    def __init__(self, size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(size):
            length = int(torch.randint(2, 6, (1,), generator=generator))
            tokens = torch.randint(3, VOCAB, (length,), generator=generator).tolist()
            self.items.append(([*tokens, EOS], [*tokens, EOS]))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        source, target = self.items[index]
        return {"input_ids": source, "labels": target}


def collate(features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    width = max(len(f["input_ids"]) for f in features)
    label_width = max(len(f["labels"]) for f in features)
    input_ids = torch.full((len(features), width), PAD)
    attention = torch.zeros((len(features), width), dtype=torch.long)
    labels = torch.full((len(features), label_width), -100)
    for row, feature in enumerate(features):
        input_ids[row, : len(feature["input_ids"])] = torch.tensor(feature["input_ids"])
        attention[row, : len(feature["input_ids"])] = 1
        labels[row, : len(feature["labels"])] = torch.tensor(feature["labels"])
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def _tiny_t5() -> transformers.T5ForConditionalGeneration:
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
    )
    return transformers.T5ForConditionalGeneration(config)


def test_t5_trained_briefly_then_evaluated_with_beam_search_generation(tmp_output) -> None:
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def compute_metrics(prediction):
        generated, labels = prediction  # unpacks like the reference's tuple
        seen.append((generated, labels))
        width = min(generated.shape[1] - 1, labels.shape[1])
        shifted = generated[:, 1 : width + 1]  # T5 output starts with the decoder start token
        target = labels[:, :width]
        real = (target != PAD) & (target != -100)
        return {"token_accuracy": float((shifted == target)[real].mean())}

    args = Seq2SeqTrainingArguments(
        output_dir=tmp_output,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=5,
        learning_rate=3e-3,
        max_steps=30,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        predict_with_generate=True,
        generation_max_length=9,
        generation_num_beams=2,
    )
    trainer = Seq2SeqTrainer(
        model=_tiny_t5(),
        args=args,
        data_collator=collate,
        train_dataset=CopyTask(64),
        eval_dataset=CopyTask(12, seed=1),
        compute_metrics=compute_metrics,
    )
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] < before
    assert 0.0 <= metrics["eval_token_accuracy"] <= 1.0
    generated, labels = seen[-1]
    # Every batch was padded to generation_max_length with the pad token, so no -100.
    assert generated.shape == (12, 9) and labels.shape == (12, 9)
    assert not (generated == -100).any()
    assert (labels[:, 6:] == PAD).all()  # targets are at most 6 tokens long

    # Keyword arguments override the arguments' settings: greedy, 4 new tokens.
    output = trainer.predict(CopyTask(7, seed=2), num_beams=1, max_new_tokens=4)
    assert output.predictions.shape == (7, 5)  # max_new_tokens + the start token
    assert output.label_ids.shape[0] == 7
    assert {"test_loss", "test_token_accuracy", "test_runtime"} <= set(output.metrics)


def test_t5_with_beams_generates_like_the_model_itself(tmp_output) -> None:
    model = _tiny_t5()
    args = Seq2SeqTrainingArguments(
        output_dir=tmp_output,
        per_device_eval_batch_size=4,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        predict_with_generate=True,
    )
    trainer = Seq2SeqTrainer(model=model, args=args, data_collator=collate)
    dataset = CopyTask(4, seed=3)
    output = trainer.predict(dataset, max_length=7, num_beams=2)
    batch = collate([dataset[i] for i in range(4)])
    with torch.no_grad():
        expected = model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            max_length=7,
            num_beams=2,
        )
    width = expected.shape[1]
    np.testing.assert_array_equal(output.predictions[:, :width], expected.numpy())
    assert (output.predictions[:, width:] == PAD).all()


def test_a_saved_generation_config_is_loaded_onto_the_model(tmp_output, tmp_path) -> None:
    transformers.GenerationConfig(
        max_length=6, num_beams=2, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD
    ).save_pretrained(tmp_path / "generation")
    args = Seq2SeqTrainingArguments(
        output_dir=tmp_output,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        predict_with_generate=True,
        generation_config=tmp_path / "generation",
    )
    trainer = Seq2SeqTrainer(model=_tiny_t5(), args=args, data_collator=collate)
    assert trainer.model.generation_config.num_beams == 2
    output = trainer.predict(CopyTask(3, seed=4))
    assert output.predictions.shape == (3, 6)  # padded to the config's max_length
