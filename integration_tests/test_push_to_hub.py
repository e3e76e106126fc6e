"""push_to_hub through the real Trainer, against trainer-testing's LocalHubServer.

The server stands in for the Hugging Face Hub (which tests cannot reach): it speaks the
Hub's HTTP protocol as huggingface_hub calls it, so the real client uploads, and the
files that reached it are read back here. The model is a tiny Llama, so the repository
gets what a transformers user's would: config.json, model.safetensors (through git-LFS),
generation_config.json, the arguments and a README.md model card.
"""

from __future__ import annotations

import os

import pytest
import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM

from trainer import Trainer, TrainerCallback, TrainingArguments
from trainer_reporting import HubAccessError
from trainer_testing import DEFAULT_HUB_TOKEN, DEFAULT_HUB_USER, LocalHubServer

# huggingface_hub 2.4 sends LFS content with httpx's deprecated `data=` argument; the
# warning is about its code, raised in its upload threads, not about ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"
)


@pytest.fixture
def hub():
    with LocalHubServer() as server:
        yield server


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(config)


def token_data(count: int) -> list[dict[str, torch.Tensor]]:
    ids = torch.randint(0, 64, (count, 8), generator=torch.Generator().manual_seed(0))
    return [{"input_ids": row, "labels": row} for row in ids]


def make_trainer(output_dir: str, **overrides) -> Trainer:
    values = dict(
        output_dir=output_dir,
        max_steps=4,
        save_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        logging_steps=1,
        per_device_train_batch_size=4,
        push_to_hub=True,
        hub_token=DEFAULT_HUB_TOKEN,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    values.update(overrides)
    args = TrainingArguments(**values)
    return Trainer(
        model=tiny_llama(), args=args, train_dataset=token_data(16), eval_dataset=token_data(8)
    )


class PushRecorder(TrainerCallback):
    """The step at each on_push_begin."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_push_begin(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def front_matter(readme: bytes) -> dict:
    text = readme.decode()
    assert text.startswith("---\n")
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


@pytest.mark.slow
def test_every_save_pushes_checkpoints_then_push_to_hub_adds_the_card(hub, tmp_path):
    output_dir = str(tmp_path / "tiny-llama")
    trainer = make_trainer(output_dir, hub_strategy="every_save", hub_always_push=True)
    pushes = PushRecorder()
    trainer.add_callback(pushes)
    assert trainer.hub_model_id == f"{DEFAULT_HUB_USER}/tiny-llama"
    trainer.train()
    messages = [commit.message for commit in hub.commits(trainer.hub_model_id)]
    assert messages == ["Training in progress, step 2", "Training in progress, step 4"]
    assert pushes.steps == [2, 4]  # on_push_begin before each checkpoint's push

    info = trainer.push_to_hub()
    assert pushes.steps == [2, 4, 4]
    repo = hub.repos[trainer.hub_model_id]
    assert info.oid == repo.head()
    assert hub.commits(trainer.hub_model_id)[-1].message == "End of training"
    assert {"config.json", "generation_config.json", "model.safetensors", "README.md"} <= set(
        repo.files
    )
    assert not any(path.startswith("checkpoint-") for path in repo.files)
    assert "optimizer.pt" not in repo.files
    with open(os.path.join(output_dir, "model.safetensors"), "rb") as file:
        assert repo.files["model.safetensors"] == file.read()
    assert "model.safetensors" in repo.lfs_paths

    card = repo.files["README.md"].decode()
    metadata = front_matter(repo.files["README.md"])
    assert "generated_from_trainer" in metadata["tags"]
    assert metadata["model-index"][0]["name"] == "tiny-llama"
    final_loss = trainer.state.log_history[-2]["eval_loss"]  # before the training summary
    assert f"- Loss: {final_loss:.4f}" in card
    assert "| Training Loss | Epoch | Step | Validation Loss |" in card
    assert "- training_steps: 4" in card


@pytest.mark.slow
def test_checkpoint_strategy_pushes_last_checkpoint_to_a_private_repo(hub, tmp_path):
    trainer = make_trainer(
        str(tmp_path / "out"),
        hub_model_id="resumable",
        hub_strategy="checkpoint",
        hub_private_repo=True,
        hub_always_push=True,
    )
    trainer.train()
    repo = hub.repos[f"{DEFAULT_HUB_USER}/resumable"]
    assert repo.private is True
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"):
        assert f"last-checkpoint/{name}" in repo.files
    assert b'"global_step": 4' in repo.files["last-checkpoint/trainer_state.json"]
    assert "optimizer.pt" not in repo.files  # the root holds the model only

    trainer.save_model()  # from user code, with push_to_hub: pushes too
    assert hub.commits(repo.repo_id)[-1].message == "Model save"
    assert "README.md" in repo.files


def test_a_bad_token_fails_when_the_trainer_is_built(hub, tmp_path):
    with pytest.raises(HubAccessError, match="no valid token was sent"):
        make_trainer(str(tmp_path / "out"), hub_token="hf_wrong")
    assert hub.repos == {}


def test_push_to_hub_without_the_argument_creates_the_repository_on_demand(hub, tmp_path):
    trainer = make_trainer(str(tmp_path / "later"), push_to_hub=False, max_steps=1)
    assert trainer.hub_model_id is None
    future = trainer.push_to_hub(commit_message="By hand", blocking=False, private=True)
    future.result()
    repo = hub.repos[f"{DEFAULT_HUB_USER}/later"]
    assert repo.private is True
    assert [commit.message for commit in repo.commits] == ["By hand"]
    assert "model.safetensors" in repo.files and "README.md" in repo.files


def test_init_git_repo_is_the_deprecated_name_of_init_hf_repo(hub, tmp_path):
    trainer = make_trainer(str(tmp_path / "old-name"), push_to_hub=False)
    with pytest.warns(FutureWarning, match="init_hf_repo"):
        trainer.init_git_repo()
    assert trainer.hub_model_id == f"{DEFAULT_HUB_USER}/old-name"
    assert trainer.hub_model_id in hub.repos
