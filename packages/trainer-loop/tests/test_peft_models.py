"""Trainer and Seq2SeqTrainer with real (tiny) PEFT LoRA models: a LoRA wrapper is judged
by the model it wraps (loss count, label shift), and a generation config reaches the
model that generates."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from trainer_args import Seq2SeqTrainingArguments, TrainingArguments  # noqa: E402
from trainer_loop import Seq2SeqTrainer, Trainer  # noqa: E402
from trainer_loop._inputs import adapter_base_model, is_causal_lm  # noqa: E402

# peft reads the deprecated ``is_gradient_checkpointing`` of the model it wraps.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")

VOCAB = 64
# Rows of 8 tokens, of which the first 3, 4 or 5 are real (the rest label -100).
ROWS = [
    {
        "input_ids": [(7 * i + 3 * j) % 60 + 2 for j in range(8)],
        "attention_mask": [1] * (3 + i % 3) + [0] * (5 - i % 3),
        "labels": [(7 * i + 3 * j) % 60 + 2 for j in range(3 + i % 3)] + [-100] * (5 - i % 3),
    }
    for i in range(4)
]


def collate(features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    return {key: torch.tensor([f[key] for f in features]) for key in features[0]}


def _gpt2() -> transformers.GPT2LMHeadModel:
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=16, pad_token_id=0
    )
    return transformers.GPT2LMHeadModel(config)


def _llama() -> transformers.LlamaForCausalLM:
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=16,
    )
    return transformers.LlamaForCausalLM(config)


def _lora(model: torch.nn.Module, modules: list[str], **options: object) -> torch.nn.Module:
    torch.manual_seed(1)  # LoRA's B starts at zero: the wrapped model computes as before
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=modules, **options)
    return peft.get_peft_model(model, config)


def _args(tmp_path, cls=TrainingArguments, **overrides) -> TrainingArguments:
    settings = dict(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=2,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    settings.update(overrides)
    return cls(**settings)


def test_a_lora_wrapper_is_judged_by_the_model_it_wraps() -> None:
    llama = _lora(_llama(), ["q_proj"], task_type="CAUSAL_LM")
    untyped = _lora(_gpt2(), ["c_attn"], fan_in_fan_out=True)  # a plain PeftModel
    assert type(untyped).__name__ == "PeftModel"
    assert adapter_base_model(untyped) is untyped.get_base_model()
    assert is_causal_lm(untyped)
    assert adapter_base_model(llama) is llama.get_base_model()
    assert is_causal_lm(llama)
    plain = _gpt2()
    assert adapter_base_model(plain) is plain


def test_a_lora_causal_lm_is_handed_the_loss_count_as_its_base_model_is(tmp_path) -> None:
    for model in (
        _lora(_llama(), ["q_proj"], task_type="CAUSAL_LM"),
        _lora(_gpt2(), ["c_attn"], fan_in_fan_out=True),
    ):
        trainer = Trainer(model=model, args=_args(tmp_path))
        assert trainer.model_accepts_loss_kwargs is True


def test_label_smoothing_shifts_the_labels_of_a_causal_lm_wrapped_without_a_task_type(
    tmp_path,
) -> None:
    args = _args(tmp_path, label_smoothing_factor=0.1)
    plain = Trainer(model=_gpt2(), args=args, eval_dataset=ROWS, data_collator=collate)
    wrapped = Trainer(
        model=_lora(_gpt2(), ["c_attn"], fan_in_fan_out=True),
        args=args,
        eval_dataset=ROWS,
        data_collator=collate,
    )
    expected = plain.evaluate()["eval_loss"]
    assert expected == pytest.approx(4.2104, abs=1e-4)
    # Unshifted, each token would be scored against itself: 4.0024.
    assert wrapped.evaluate()["eval_loss"] == pytest.approx(expected, abs=1e-6)


def test_a_generation_config_reaches_the_model_a_peft_seq2seq_model_wraps(tmp_path) -> None:
    """PEFT's encoder-decoder ``generate`` reads the wrapped model's configuration."""
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=VOCAB,
        d_model=16,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        d_kv=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    model = _lora(
        transformers.T5ForConditionalGeneration(config), ["q", "v"], task_type="SEQ_2_SEQ_LM"
    )
    generation = transformers.GenerationConfig(
        max_length=5, num_beams=2, decoder_start_token_id=0, eos_token_id=1, pad_token_id=0
    )
    args = _args(
        tmp_path,
        cls=Seq2SeqTrainingArguments,
        predict_with_generate=True,
        generation_config=generation,
    )
    trainer = Seq2SeqTrainer(model=model, args=args, data_collator=collate)
    predictions = trainer.predict(ROWS).predictions
    assert predictions.shape == (4, 5)  # without it: 20 tokens and more
    wrapped = model.get_base_model().generation_config
    assert (wrapped.max_length, wrapped.num_beams) == (5, 2)
