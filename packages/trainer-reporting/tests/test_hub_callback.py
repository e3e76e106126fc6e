"""HubCallback against trainer-testing's LocalHubServer, which stands in for the Hub.

The Hub cannot be reached from tests; the server speaks the Hub's HTTP protocol as
huggingface_hub calls it (repository creation, preupload, git-LFS batch/upload/verify,
ndjson commits), so the real client library runs unchanged and the files it pushed are
read back from the server.
"""

from __future__ import annotations

import os
import shutil
import sys
from concurrent.futures import Future

import pytest

from trainer_args import TrainingArguments
from trainer_core import (
    HUB_GROUP,
    MissingExtraError,
    TrainerControl,
    TrainerState,
    available_plugins,
    load_plugin,
)
from trainer_reporting import HubAccessError, HubCallback
from trainer_testing import DEFAULT_HUB_TOKEN, DEFAULT_HUB_USER, LocalHubServer

# huggingface_hub 2.4 sends LFS content with httpx's deprecated `data=` argument; the
# warning is about its code, raised in its upload threads, not about ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"
)

WEIGHTS = bytes(range(256)) * 8  # 2 KiB: safetensors go through git-LFS, as on the Hub


@pytest.fixture
def hub():
    with LocalHubServer(organizations=("local-org",)) as server:
        yield server


def hub_args(tmp_path, **overrides) -> TrainingArguments:
    values = dict(
        output_dir=str(tmp_path / "run-name"),
        use_cpu=True,
        push_to_hub=True,
        hub_token=DEFAULT_HUB_TOKEN,
        save_steps=2,
    )
    values.update(overrides)
    return TrainingArguments(**values)


def write_checkpoint(args: TrainingArguments, step: int) -> str:
    """A checkpoint folder as the loop writes it: model files and resume state."""
    folder = os.path.join(args.output_dir, f"checkpoint-{step}")
    os.makedirs(folder, exist_ok=True)
    files = {
        "model.safetensors": WEIGHTS + bytes([step]),
        "config.json": b'{"model_type": "tiny"}',
        "training_args.bin": b"args",
        "optimizer.pt": b"optimizer state",
        "scheduler.pt": b"scheduler state",
        "rng_state.pth": b"rng",
        "trainer_state.json": b"{}",
    }
    for name, content in files.items():
        with open(os.path.join(folder, name), "wb") as file:
            file.write(content)
    return folder


def save_event(callback: HubCallback, args: TrainingArguments, step: int) -> None:
    write_checkpoint(args, step)
    state = TrainerState(global_step=step, epoch=step / 2.0)
    callback.on_save(args, state, TrainerControl())


def test_the_hub_entry_point_loads_this_callback():
    assert load_plugin(HUB_GROUP, "hub") is HubCallback
    assert available_plugins(HUB_GROUP)["hub"] == "trainer-reporting"
    assert HubCallback.name == "hub"


def test_repository_is_named_after_output_dir_in_the_tokens_namespace(hub, tmp_path):
    callback = HubCallback(hub_args(tmp_path))
    assert callback.repo_id == f"{DEFAULT_HUB_USER}/run-name"
    assert hub.repos[callback.repo_id].private is False


def test_hub_model_id_private_flag_and_an_existing_repository(hub, tmp_path):
    args = hub_args(tmp_path, hub_model_id="local-org/named", hub_private_repo=True)
    assert HubCallback(args).repo_id == "local-org/named"
    assert hub.repos["local-org/named"].private is True
    again = HubCallback(hub_args(tmp_path, hub_model_id="local-org/named"), private=False)
    assert again.repo_id == "local-org/named"  # reused; visibility stays as created
    assert hub.repos["local-org/named"].private is True


def test_the_older_push_to_hub_arguments_name_the_repository(hub, tmp_path):
    with pytest.warns(FutureWarning):
        args = hub_args(
            tmp_path,
            hub_token=None,
            push_to_hub_model_id="older",
            push_to_hub_organization="local-org",
            push_to_hub_token=DEFAULT_HUB_TOKEN,
        )
    assert HubCallback(args).repo_id == "local-org/older"


def test_a_bad_token_is_refused_with_a_clear_error(hub, tmp_path):
    with pytest.raises(HubAccessError, match="no valid token was sent") as error:
        HubCallback(hub_args(tmp_path, hub_token="hf_not_a_token"))
    assert "hub_token" in str(error.value)
    assert error.value.__cause__.response.status_code == 401
    with pytest.raises(HubAccessError, match="may not write to that namespace"):
        HubCallback(hub_args(tmp_path, hub_model_id="someone-else/model"))


def test_offline_mode_says_how_to_train_without_the_hub(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineModeIsEnabled, match=r"offline mode.*push_to_hub=False"):
        HubCallback(hub_args(tmp_path))
    assert not hub.repos  # nothing reached the server


def test_every_save_pushes_the_model_files_to_the_root_only(hub, tmp_path):
    args = hub_args(tmp_path, hub_strategy="every_save")
    callback = HubCallback(args)
    save_event(callback, args, 2)
    callback.on_train_end(args, TrainerState(), TrainerControl())
    repo = hub.repos[callback.repo_id]
    assert sorted(repo.files) == ["config.json", "model.safetensors", "training_args.bin"]
    assert repo.files["model.safetensors"] == WEIGHTS + bytes([2])
    assert "model.safetensors" in repo.lfs_paths
    assert ("PUT", f"/lfs-upload/{_sha256(WEIGHTS + bytes([2]))}") in hub.requests
    assert [c.message for c in hub.commits(callback.repo_id)] == ["Training in progress, step 2"]
    assert os.path.isfile(os.path.join(args.output_dir, "model.safetensors"))  # copied there
    assert not os.path.exists(os.path.join(args.output_dir, "optimizer.pt"))


def test_a_save_pushes_output_dirs_subfolders_as_they_are_then(hub, tmp_path):
    """The TensorBoard logs in output_dir/runs reach the Hub at each save (its training
    metrics tab reads them), as the reference's push of output_dir sends them."""
    args = hub_args(tmp_path, hub_strategy="every_save")
    events = os.path.join(args.output_dir, "runs", "Dec01_host", "events.out.tfevents.1")
    os.makedirs(os.path.dirname(events))
    with open(events, "wb") as file:
        file.write(b"step 1")
    os.makedirs(os.path.join(args.output_dir, "_private"))
    open(os.path.join(args.output_dir, "_private", "x"), "wb").close()
    callback = HubCallback(args)
    with hub.hold_commits():
        save_event(callback, args, 2)
        hub.wait_for_held_commit()
        with open(events, "ab") as file:  # the writer goes on appending meanwhile
            file.write(b", step 2")
    callback.wait_until_done()
    files = hub.repos[callback.repo_id].files
    assert files["runs/Dec01_host/events.out.tfevents.1"] == b"step 1"
    assert not [path for path in files if path.startswith(("_", "checkpoint-"))]


def test_a_checkpoint_rotated_away_before_its_push_still_reaches_the_hub(hub, tmp_path):
    """save_total_limit deletes the checkpoint at the next save, maybe before its
    background push has read it."""
    args = hub_args(tmp_path, hub_strategy="all_checkpoints")
    callback = HubCallback(args)
    with hub.hold_commits():
        save_event(callback, args, 2)
        hub.wait_for_held_commit()  # the root's push; the checkpoint's waits behind it
        shutil.rmtree(os.path.join(args.output_dir, "checkpoint-2"))
    callback.wait_until_done()
    files = hub.repos[callback.repo_id].files
    assert files["checkpoint-2/optimizer.pt"] == b"optimizer state"
    assert not [n for n in os.listdir(args.output_dir) if n.startswith("_hub_push-")]


@pytest.mark.parametrize(
    ("strategy", "folder"), [("checkpoint", "last-checkpoint"), ("all_checkpoints", "checkpoint-2")]
)
def test_checkpoint_strategies_push_the_whole_checkpoint_too(hub, tmp_path, strategy, folder):
    args = hub_args(tmp_path, hub_strategy=strategy, save_strategy="epoch")
    callback = HubCallback(args)
    save_event(callback, args, 2)
    callback.wait_until_done()
    files = hub.repos[callback.repo_id].files
    assert f"{folder}/optimizer.pt" in files and f"{folder}/rng_state.pth" in files
    assert files[f"{folder}/model.safetensors"] == WEIGHTS + bytes([2])
    assert "optimizer.pt" not in files
    assert [c.message for c in hub.commits(callback.repo_id)] == [
        "Training in progress, epoch 1",
        "Training in progress, epoch 1, checkpoint",
    ]


def test_end_strategy_pushes_nothing_on_saves(hub, tmp_path):
    args = hub_args(tmp_path, hub_strategy="end")
    callback = HubCallback(args)
    save_event(callback, args, 2)
    callback.wait_until_done()
    assert hub.commits(callback.repo_id) == []


def test_a_save_during_a_running_push_is_skipped(hub, tmp_path):
    args = hub_args(tmp_path)
    callback = HubCallback(args)
    with hub.hold_commits():
        save_event(callback, args, 2)
        hub.wait_for_held_commit()  # the first push is running, held by the server
        save_event(callback, args, 4)
        assert len(callback.pusher.jobs) == 1
    callback.wait_until_done()
    assert [c.message for c in hub.commits(callback.repo_id)] == ["Training in progress, step 2"]


def test_hub_always_push_queues_saves_behind_the_running_push_in_order(hub, tmp_path):
    args = hub_args(tmp_path, hub_always_push=True)
    callback = HubCallback(args)
    with hub.hold_commits():
        save_event(callback, args, 2)
        hub.wait_for_held_commit()
        save_event(callback, args, 4)
        assert callback.pusher.is_pushing()
    callback.on_train_end(args, TrainerState(), TrainerControl())
    assert not callback.pusher.is_pushing()
    assert [c.message for c in hub.commits(callback.repo_id)] == [
        "Training in progress, step 2",
        "Training in progress, step 4",
    ]
    assert hub.repos[callback.repo_id].files["model.safetensors"] == WEIGHTS + bytes([4])


def test_push_uploads_output_dir_without_checkpoints_and_can_return_a_future(hub, tmp_path):
    args = hub_args(tmp_path, hub_strategy="end")
    callback = HubCallback(args)
    write_checkpoint(args, 2)
    with open(os.path.join(args.output_dir, "README.md"), "w", encoding="utf-8") as file:
        file.write("---\ntags:\n- generated_from_trainer\n---\n# run-name\n")
    info = callback.push(args.output_dir, commit_message="End of training")
    assert info.oid == hub.commits(callback.repo_id)[-1].oid
    assert sorted(hub.repos[callback.repo_id].files) == ["README.md"]
    future = callback.push(args.output_dir, commit_message="Again", blocking=False)
    assert isinstance(future, Future)
    callback.wait_until_done()
    assert future.done()


def test_a_failed_background_push_is_logged_not_raised(hub, tmp_path, caplog):
    args = hub_args(tmp_path)
    callback = HubCallback(args)
    callback.pusher.token = "hf_revoked_token"  # the token stops working mid-run
    save_event(callback, args, 2)
    callback.wait_until_done()
    assert "refused to push" in caplog.text and "no valid token was sent" in caplog.text
    assert hub.commits(callback.repo_id) == []


def test_a_failed_background_push_names_its_commit(hub, tmp_path, caplog):
    args = hub_args(tmp_path, hub_strategy="checkpoint")
    callback = HubCallback(args)
    callback.pusher.token = "hf_revoked_token"
    save_event(callback, args, 2)
    callback.wait_until_done()
    assert "'Training in progress, step 2'" in caplog.text
    assert "'Training in progress, step 2, checkpoint' (last-checkpoint/)" in caplog.text
    assert "_hub_push-" not in caplog.text  # not the staging folder, gone by now


def test_a_background_push_is_not_broken_by_a_save_while_it_runs(hub, tmp_path):
    """push(blocking=False) then save_model(): the save moves the old weights aside and
    deletes them while the upload may still be reading output_dir."""
    args = hub_args(tmp_path, hub_strategy="end")
    callback = HubCallback(args)
    os.makedirs(args.output_dir)
    weights = os.path.join(args.output_dir, "model.safetensors")
    with open(weights, "wb") as file:
        file.write(WEIGHTS)
    future = callback.push(args.output_dir, commit_message="End of training", blocking=False)
    aside = os.path.join(args.output_dir, ".tmp-previous-weights-0000")
    os.mkdir(aside)  # what save_model does to the weights the push is reading
    os.replace(weights, os.path.join(aside, "model.safetensors"))
    with open(weights, "wb") as file:
        file.write(b"the next save's weights")
    shutil.rmtree(aside)
    future.result()
    callback.wait_until_done()
    assert hub.repos[callback.repo_id].files["model.safetensors"] == WEIGHTS
    assert [c.message for c in hub.commits(callback.repo_id)] == ["End of training"]
    assert sorted(os.listdir(args.output_dir)) == ["model.safetensors"]  # snapshot removed


def test_saves_push_nothing_without_push_to_hub(hub, tmp_path):
    """A manual Trainer.push_to_hub() registers the callback; the saves of a later train()
    still push only when the arguments ask for it."""
    args = hub_args(tmp_path, push_to_hub=False)
    callback = HubCallback(args)
    save_event(callback, args, 2)
    assert callback.pusher.jobs == []
    assert hub.commits(callback.repo_id) == []


def test_a_token_given_to_create_the_repository_does_not_stick(hub, tmp_path):
    args = hub_args(tmp_path, hub_token=None)
    callback = HubCallback(args, token=DEFAULT_HUB_TOKEN)  # init_hf_repo(token=...)
    assert callback.repo_id == f"{DEFAULT_HUB_USER}/run-name"
    os.makedirs(args.output_dir)
    with open(os.path.join(args.output_dir, "config.json"), "w", encoding="utf-8") as file:
        file.write("{}")
    with pytest.raises(HubAccessError, match="no valid token was sent"):
        callback.push(args.output_dir, commit_message="without a token")
    callback.push(args.output_dir, commit_message="with one", token=DEFAULT_HUB_TOKEN)
    assert [c.message for c in hub.commits(callback.repo_id)] == ["with one"]


def test_other_processes_push_nothing(hub, tmp_path):
    args = hub_args(tmp_path)
    callback = HubCallback(args)
    write_checkpoint(args, 2)
    state = TrainerState(global_step=2, is_world_process_zero=False)
    callback.on_save(args, state, TrainerControl())
    assert callback.pusher.jobs == []


def test_without_huggingface_hub_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"trainer-reporting\[hub\]"):
        HubCallback(hub_args(tmp_path))


def _sha256(content: bytes) -> str:
    import hashlib

    return hashlib.sha256(content).hexdigest()


def test_a_save_pushes_a_snapshot_that_later_writes_to_output_dir_do_not_change(hub, tmp_path):
    """The upload runs in the background; save_model() or the next save rewrites
    output_dir's files meanwhile. What a save pushes is the checkpoint as it was."""
    args = hub_args(tmp_path, hub_always_push=True)
    callback = HubCallback(args)
    with hub.hold_commits():
        save_event(callback, args, 2)
        hub.wait_for_held_commit()
        staged = [n for n in os.listdir(args.output_dir) if n.startswith("_hub_push-")]
        assert len(staged) == 1  # the push reads from its own folder...
        with open(os.path.join(args.output_dir, "model.safetensors"), "wb") as file:
            file.write(b"rewritten in place by save_model")  # ...not from output_dir
        staged_weights = os.path.join(args.output_dir, staged[0], "model.safetensors")
        with open(staged_weights, "rb") as file:
            assert file.read() == WEIGHTS + bytes([2])
    callback.wait_until_done()
    assert not [n for n in os.listdir(args.output_dir) if n.startswith("_hub_push-")]
    assert hub.repos[callback.repo_id].files["model.safetensors"] == WEIGHTS + bytes([2])


def test_a_snapshot_keeps_its_files_when_the_next_save_copies_over_them(tmp_path) -> None:
    """The weights are hard-linked into the snapshot; the next save's copy replaces the
    file instead of writing into it, and files that are rewritten in place (an adapter's
    torch.save, the arguments) are copied, not linked."""
    from trainer_reporting._hub_push import copy_model_files, stage_output_dir

    args = hub_args(tmp_path)
    os.makedirs(args.output_dir)
    for name in ("model.safetensors", "adapter_model.bin"):
        with open(os.path.join(args.output_dir, name), "wb") as file:
            file.write(b"step 2")
    staging = stage_output_dir(args.output_dir)
    checkpoint = write_checkpoint(args, 4)
    copy_model_files(checkpoint, args.output_dir)
    with open(os.path.join(args.output_dir, "adapter_model.bin"), "wb") as file:
        file.write(b"step 4")  # rewritten in place
    for name in ("model.safetensors", "adapter_model.bin"):
        with open(os.path.join(staging, name), "rb") as file:
            assert file.read() == b"step 2"
    assert not [n for n in os.listdir(args.output_dir) if n.startswith(".tmp-copy-")]
