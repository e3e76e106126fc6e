"""Seq2SeqTrainer generating with real (tiny) T5 and Llama models: default lengths,
padding, loss modes."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from trainer_args import Seq2SeqTrainingArguments  # noqa: E402
from trainer_loop import Seq2SeqTrainer  # noqa: E402

PAD, EOS = 0, 1
LONG_TARGET = list(range(12, 40))  # 28 tokens without an end: generation runs to its limit


def _tokenizer() -> transformers.PreTrainedTokenizerFast:
    vocab = {"<pad>": PAD, "</s>": EOS, "<unk>": 2, **{f"w{i}": i for i in range(3, 64)}}
    model = tokenizers.models.WordLevel(vocab, unk_token="<unk>")
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def _dataset() -> list[dict[str, list[int]]]:
    """Batches of 3 whose generations differ: short answers, then answers with no end."""
    short = [{"input_ids": [5, 6, 7 + i, EOS], "labels": [10, 11, EOS]} for i in range(3)]
    long = [{"input_ids": [8, 9, 10 + i, EOS], "labels": LONG_TARGET} for i in range(3)]
    return short + long


def collate(features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    width = max(len(f["input_ids"]) for f in features)
    label_width = max(len(f["labels"]) for f in features)
    rows = [f["input_ids"] + [PAD] * (width - len(f["input_ids"])) for f in features]
    masks = [[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features]
    labels = [f["labels"] + [-100] * (label_width - len(f["labels"])) for f in features]
    return {
        "input_ids": torch.tensor(rows),
        "attention_mask": torch.tensor(masks),
        "labels": torch.tensor(labels),
    }


def _tiny_t5() -> transformers.T5ForConditionalGeneration:
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=64,
        d_model=32,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        d_kv=8,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
    )
    return transformers.T5ForConditionalGeneration(config)


@pytest.fixture(scope="module")
def trained_t5() -> transformers.T5ForConditionalGeneration:
    """A T5 that answers the short inputs in 3 tokens and the long ones past 20."""
    model = _tiny_t5()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    batch = collate(_dataset())
    for _ in range(30):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return model


def _args(tmp_path, **overrides) -> Seq2SeqTrainingArguments:
    settings = dict(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=3,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        predict_with_generate=True,
    )
    settings.update(overrides)
    return Seq2SeqTrainingArguments(**settings)


def test_without_a_length_predictions_have_the_default_width_and_decode(
    tmp_path, trained_t5
) -> None:
    tokenizer = _tokenizer()
    decoded: list[list[str]] = []

    def compute_metrics(prediction):
        decoded.append(tokenizer.batch_decode(prediction.predictions, skip_special_tokens=True))
        return {}

    trainer = Seq2SeqTrainer(
        model=trained_t5,
        args=_args(tmp_path),
        data_collator=collate,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
    )
    assert trained_t5.generation_config.max_length is None  # the transformers 5 default
    output = trainer.predict(_dataset())
    # transformers 5.24's Seq2SeqTrainer gives (6, 20) here: generation's default
    # max_length, every row padded with the pad token.
    assert output.predictions.shape == (6, 20)
    assert not (output.predictions == -100).any()
    assert output.predictions[0, 4:].tolist() == [PAD] * 16  # the short answer, padded
    assert output.label_ids.shape == (6, len(LONG_TARGET))
    assert decoded[0][:3] == ["w10 w11"] * 3
    assert decoded[0][3].startswith("w12 w13 w14")
    assert trained_t5.generation_config.max_length is None  # the user's model is unchanged


def test_eval_steps_per_second_is_reported_for_an_empty_dataset(tmp_path, trained_t5) -> None:
    trainer = Seq2SeqTrainer(model=trained_t5, args=_args(tmp_path), data_collator=collate)
    metrics = trainer.evaluate([])
    assert metrics["eval_samples_per_second"] == 0.0
    assert metrics["eval_steps_per_second"] == 0.0


def _loss_per_batch(model, loss_of_batch) -> float:
    """The mean over the dataset's batches of 3 (equal sizes: one sample weighs as one)."""
    data = _dataset()
    with torch.no_grad():
        losses = [loss_of_batch(model, collate(data[i : i + 3])) for i in (0, 3)]
    return float(torch.stack(losses).mean())


def _smoothed(model, batch) -> torch.Tensor:
    logits = model(**batch).logits
    return functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        batch["labels"].reshape(-1),
        ignore_index=-100,
        label_smoothing=0.1,
    )


def test_label_smoothing_with_generation_smooths_a_forward_given_the_labels(tmp_path) -> None:
    model = _tiny_t5()
    args = _args(tmp_path, label_smoothing_factor=0.1, generation_max_length=6)
    trainer = Seq2SeqTrainer(model=model, args=args, data_collator=collate)
    output = trainer.predict(_dataset())  # T5 builds its decoder inputs from the labels
    assert output.predictions.shape == (6, 6)
    assert output.metrics["test_loss"] == pytest.approx(_loss_per_batch(model, _smoothed))


def test_a_generating_step_reports_the_models_own_loss_not_compute_loss_funcs(tmp_path) -> None:
    """As in the reference, whose generating step reads the model's loss (or the smoothed
    one): ``compute_loss_func`` applies to training and to evaluation without generation."""

    def doubled(outputs, labels, num_items_in_batch=None):
        return 2 * functional.cross_entropy(
            outputs.logits.reshape(-1, outputs.logits.shape[-1]), labels.reshape(-1)
        )

    model = _tiny_t5().eval()
    own = _loss_per_batch(model, lambda m, batch: m(**batch).loss)
    args = _args(tmp_path, generation_max_length=6)
    trainer = Seq2SeqTrainer(
        model=model, args=args, data_collator=collate, compute_loss_func=doubled
    )
    assert trainer.predict(_dataset()).metrics["test_loss"] == pytest.approx(own)


@pytest.mark.filterwarnings("ignore:Using the model-agnostic default `max_length`")
def test_a_decoder_only_model_keeps_its_default_of_20_new_tokens(tmp_path) -> None:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=PAD,
        eos_token_id=EOS,
    )
    model = transformers.LlamaForCausalLM(config)
    model.generation_config.eos_token_id = None  # generate to the limit
    prompts = [{"input_ids": list(range(3, 27)), "labels": list(range(3, 27))}] * 2
    args = _args(tmp_path, per_device_eval_batch_size=2)
    output = Seq2SeqTrainer(model=model, args=args, data_collator=collate).predict(prompts)
    # A total length of 20 would refuse these 24-token prompts; 20 new tokens follow them.
    assert output.predictions.shape == (2, 24 + 20)


# --------------------------------------------- generation_config as the reference takes it
def test_a_generation_config_json_file_of_any_name_is_read(tmp_path) -> None:
    saved = transformers.GenerationConfig(max_length=9, num_beams=2, decoder_start_token_id=PAD)
    saved.save_pretrained(str(tmp_path), config_file_name="my_gen.json")
    args = _args(tmp_path, generation_config=str(tmp_path / "my_gen.json"))
    trainer = Seq2SeqTrainer(model=_tiny_t5(), args=args, data_collator=collate)
    config = trainer.model.generation_config
    assert (config.max_length, config.num_beams) == (9, 2)


def test_an_invalid_generation_config_is_refused_before_training(tmp_path) -> None:
    invalid = transformers.GenerationConfig(do_sample=False, temperature=0.5)
    with pytest.raises(ValueError, match=r"(?s)invalid.*temperature.*of generation_config"):
        Seq2SeqTrainer(model=_tiny_t5(), args=_args(tmp_path, generation_config=invalid))


def test_a_given_generation_config_is_copied_and_a_dict_only_overrides_its_keys(
    tmp_path,
) -> None:
    given = transformers.GenerationConfig(max_length=7, decoder_start_token_id=PAD)
    trainer = Seq2SeqTrainer(model=_tiny_t5(), args=_args(tmp_path, generation_config=given))
    assert trainer.model.generation_config is not given  # two trainers never share one
    args = _args(tmp_path, generation_config={"max_length": 6, "num_beams": 2})
    model = Seq2SeqTrainer(model=_tiny_t5(), args=args).model
    config = model.generation_config
    assert (config.max_length, config.num_beams) == (6, 2)
    assert (config.decoder_start_token_id, config.eos_token_id) == (PAD, EOS)  # the model's


def test_subclasses_pad_generated_tokens_with_the_reference_helper(tmp_path) -> None:
    trainer = Seq2SeqTrainer(model=_tiny_t5(), args=_args(tmp_path), processing_class=_tokenizer())
    padded = trainer._pad_tensors_to_max_len(torch.tensor([[5, 6], [7, 8]]), 4)
    assert padded.tolist() == [[5, 6, PAD, PAD], [7, 8, PAD, PAD]]
