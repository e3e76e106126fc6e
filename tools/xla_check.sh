#!/usr/bin/env bash
# XLA FSDP check: trainer-dist's XlaFSDPRuntime on real torch_xla, with XLA on the CPU
# (PJRT_DEVICE=CPU). Needs no TPU and no GPU; never part of CI (about 3-4 minutes on 2
# busy cores once the virtualenv exists).
#
# torch_xla pins its own torch (2.9.0), so it runs in a separate virtualenv, .venvs/xla,
# created here when missing (about 1 minute; the CUDA build of torch 2.9.0 is ~3 GB) with
# the workspace packages installed editable. Nothing touches .venv.
#
# A tiny Llama (built from a config: nothing is downloaded) trains through Trainer with
# fsdp="full_shard" and fsdp_config={"xla": True, ...}:
#   main    layer auto-wrap + xla_fsdp_grad_ckpt + an xla_fsdp_settings dict
#           (flatten_parameters, compute/buffer dtypes); sharded checkpoints
#   full    state_dict_type=FULL_STATE_DICT, size-based auto-wrap, shard_param_on_dim_0
#   bf16    bf16=True (the wrapper's compute_dtype)
#   plain   the same run on torch's CPU without XLA, to compare against
# and checks: steps run and loss falls; resuming from the half-way checkpoint in a fresh
# process ends with exactly the weights of the uninterrupted run; the XLA run matches the
# plain one to float precision; save_model writes weights that load strictly into the
# plain model; the shard files consolidate (ours and torch_xla's consolidation) to the
# trained weights; evaluate/predict agree with the plain model on those weights; two
# processes under torchrun and two replicas as threads (xmp.spawn, CPU_NUM_DEVICES=2)
# are refused, since PJRT's CPU client cannot train them (see the report below).
#
# Usage: tools/xla_check.sh [STEPS]     (default 8; even)
# Prints one PASS/FAIL line per check with its figures, exits non-zero on any FAIL.
set -uo pipefail

cd "$(dirname "$0")/.."
VENV=.venvs/xla
PY="$VENV/bin/python"
STEPS="${1:-8}"
WORK="$(mktemp -d)"
export PJRT_DEVICE=CPU OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
unset CPU_NUM_DEVICES WORLD_SIZE RANK LOCAL_RANK

if ! "$PY" -c "import torch_xla, trainer" 2>/dev/null; then
  echo "creating $VENV (torch 2.9.0 + torch_xla 2.9.0 + the workspace packages)..."
  uv venv "$VENV" --python 3.11 --allow-existing >/dev/null || exit 1
  uv pip install --python "$PY" --quiet torch==2.9.0 torch_xla==2.9.0 accelerate safetensors \
    numpy pytest hypothesis pyyaml tqdm "transformers>=4.46" \
    -e packages/trainer-core -e packages/trainer-args -e packages/trainer-checkpoint \
    -e packages/trainer-dist -e packages/trainer-loop -e packages/trainer-reporting \
    -e packages/trainer-hpsearch -e packages/trainer -e packages/trainer-testing || exit 1
fi

cat >"$WORK/xla_run.py" <<'PYEOF'
"""One Trainer run (XLA or plain CPU); writes report.json and weights.pt into --out."""
import argparse, json, os, time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--config", choices=["main", "full", "bf16", "plain"], required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--steps", type=int, default=8)
parser.add_argument("--resume", default=None)
parser.add_argument("--evaluate", action="store_true")
options = parser.parse_args()

from transformers import LlamaConfig, LlamaForCausalLM
from trainer import Trainer, TrainingArguments
from trainer_dist import consolidate_xla_fsdp_checkpoint

VOCAB, SEQ = 64, 16
CONFIGS = {
    "main": {"transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"], "xla_fsdp_grad_ckpt": True,
             "xla_fsdp_settings": {"flatten_parameters": True, "compute_dtype": "float32",
                                   "buffer_dtype": "float32"}},
    "full": {"min_num_params": 2000, "state_dict_type": "FULL_STATE_DICT",
             "xla_fsdp_settings": {"shard_param_on_dim_0": True}},
    "bf16": {"transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]},
}


class Tokens(torch.utils.data.Dataset):
    """Sequences counting up from a random start: learnable in a few steps."""

    def __init__(self, size, seed=0):
        self.starts = torch.randint(0, VOCAB, (size,), generator=torch.Generator().manual_seed(seed))

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        ids = (self.starts[i] + torch.arange(SEQ)) % VOCAB
        return {"input_ids": ids, "labels": ids.clone()}


def build(init=0.02):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=SEQ, initializer_range=init)
    return LlamaForCausalLM(config)


def max_diff(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


xla = options.config != "plain"
sharding = {"fsdp": "full_shard", "fsdp_config": {"xla": True, **CONFIGS[options.config]}} if xla else {}
args = TrainingArguments(
    output_dir=options.out, max_steps=options.steps, per_device_train_batch_size=4,
    per_device_eval_batch_size=3, learning_rate=3e-3, weight_decay=0.1, warmup_steps=2,
    logging_steps=1, save_strategy="steps", save_steps=options.steps // 2, report_to="none",
    disable_tqdm=True, seed=0, use_cpu=not xla, bf16=options.config == "bf16", **sharding,
)
eval_set, predict_set = Tokens(9, seed=1), Tokens(6, seed=2)
trainer = Trainer(model=build(), args=args, train_dataset=Tokens(64), eval_dataset=eval_set)
start = time.perf_counter()
trainer.train(resume_from_checkpoint=options.resume)
elapsed = time.perf_counter() - start
steps_run = options.steps - (options.steps // 2 if options.resume else 0)
weights = {k: v.detach().cpu().clone() for k, v in trainer.runtime.state_dict(trainer.model_wrapped).items()}
torch.save(weights, os.path.join(options.out, "weights.pt"))
losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
report = {"runtime": type(trainer.runtime).__name__, "global_step": trainer.state.global_step,
          "steps_per_s": round(steps_run / elapsed, 2), "losses": losses}

if options.evaluate:
    report["eval_loss"] = trainer.evaluate()["eval_loss"]
    predicted = trainer.predict(predict_set)
    report["predict_shape"] = list(predicted.predictions.shape)
    saved = os.path.join(options.out, "saved")
    trainer.save_model(saved)
    from safetensors.torch import load_file
    plain = build(init=0.5)  # other weights, overwritten by the load
    plain.load_state_dict(load_file(os.path.join(saved, "model.safetensors")))  # strict
    report["save_model_diff"] = max_diff(weights, plain.state_dict())
    with torch.no_grad():  # the plain model on the saved weights, batch by batch as evaluate
        batches = [torch.stack([eval_set[i]["input_ids"] for i in range(j, j + 3)]) for j in (0, 3, 6)]
        report["plain_eval_loss"] = sum(plain(input_ids=b, labels=b).loss.item() for b in batches) / 3
        ids = torch.stack([predict_set[i]["input_ids"] for i in range(6)])
        logits = plain(input_ids=ids).logits
    report["predict_diff"] = (torch.as_tensor(predicted.predictions) - logits).abs().max().item()
    final = os.path.join(options.out, f"checkpoint-{options.steps}")
    if xla and any(name.endswith("pytorch_model.bin") for name in os.listdir(final)):
        report["consolidated_diff"] = max_diff(weights, consolidate_xla_fsdp_checkpoint(final))
        from torch_xla.distributed.fsdp import consolidate_sharded_state_dicts
        files = [torch.load(os.path.join(final, name), weights_only=True)
                 for name in sorted(os.listdir(final)) if name.endswith("pytorch_model.bin")]
        theirs = consolidate_sharded_state_dicts([f["model"] for f in files], files[0]["shard_metadata"])
        report["torch_xla_consolidated_diff"] = max_diff(weights, theirs)

with open(os.path.join(options.out, "report.json"), "w") as handle:
    json.dump(report, handle)
PYEOF

cat >"$WORK/refuse.py" <<'PYEOF'
"""Build the XLA runtime under torchrun (2 processes) or xmp.spawn (2 threads)."""
import sys


def build(index=None):
    from trainer_dist import XlaFSDPRuntime, parse_xla_fsdp
    try:
        runtime = XlaFSDPRuntime(parse_xla_fsdp("full_shard", {"xla": True}))
        line = f"BUILT {runtime}"
    except RuntimeError as error:
        line = "REFUSED " + str(error).split(":")[0]
    # One write per line: print's separate writes of two threads can interleave.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["threads"]:
        import torch_xla.distributed.xla_multiprocessing as xmp
        xmp.spawn(build)
    else:
        build()
PYEOF

FAILED=0
check() {  # check NAME OK(0/1) DETAILS
  if [ "$2" = 1 ]; then printf 'PASS  %-22s %s\n' "$1" "$3"; else printf 'FAIL  %-22s %s\n' "$1" "$3"; FAILED=1; fi
}

train() {  # train NAME CONFIG [options...]: one run, its log in WORK/NAME.log
  local name="$1" config="$2"; shift 2
  local started=$SECONDS
  if ! timeout 300 "$PY" "$WORK/xla_run.py" --config "$config" --out "$WORK/$name" \
      --steps "$STEPS" "$@" >"$WORK/$name.log" 2>&1; then
    check "$name" 0 "run failed ($((SECONDS - started))s): $(grep -m1 -E 'Error|error' "$WORK/$name.log")"
    return 1
  fi
  echo "      $name: $((SECONDS - started))s" >>"$WORK/times.txt"
}

# Python that reads the reports and prints "1|0 details" for one comparison.
judge() { "$PY" - "$WORK" "$@" <<'PYEOF'
import json, os, sys
import torch
work, what = sys.argv[1], sys.argv[2]
def report(name):
    with open(os.path.join(work, name, "report.json")) as handle:
        return json.load(handle)
def weights(name):
    return torch.load(os.path.join(work, name, "weights.pt"), weights_only=True)
def diff(a, b):
    a, b = weights(a), weights(b)
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a) if a.keys() == b.keys() else float("inf")
r = report(sys.argv[3])
if what == "trained":
    ok = r["global_step"] == int(sys.argv[4]) and r["losses"][-1] < r["losses"][0]
    print(int(ok), f'{r["runtime"]}: {r["steps_per_s"]} steps/s, loss {r["losses"][0]:.4f} -> {r["losses"][-1]:.4f}')
elif what == "resumed":
    d = diff(sys.argv[3], sys.argv[4])
    print(int(d == 0.0), f"weights after resuming vs uninterrupted: max |diff| = {d:g} (must be 0)")
elif what == "matches":
    d, p = diff(sys.argv[3], sys.argv[4]), report(sys.argv[4])
    close = all(abs(a - b) <= 1e-4 * abs(b) for a, b in zip(r["losses"], p["losses"]))
    print(int(d <= 1e-6 and close), f"vs plain CPU: max |weight diff| = {d:.2g}, losses equal to 1e-4: {close}")
elif what == "bf16":
    p = report(sys.argv[4])
    a, b = r["losses"][-1], p["losses"][-1]
    print(int(a != b and abs(a - b) <= 2e-2 * b), f"final loss {a:.4f} (bf16) vs {b:.4f} (fp32), {r['steps_per_s']} steps/s")
elif what == "evaluated":
    ok = (abs(r["eval_loss"] - r["plain_eval_loss"]) <= 1e-5 * r["plain_eval_loss"]
          and r["predict_shape"] == [6, 16, 64] and r["predict_diff"] <= 1e-4)
    print(int(ok), f'eval_loss {r["eval_loss"]:.6f} vs plain model {r["plain_eval_loss"]:.6f}; predict {r["predict_shape"]}, max |logit diff| {r["predict_diff"]:.2g}')
elif what == "saved":
    ok = r["save_model_diff"] == 0.0 and r.get("consolidated_diff", 0.0) == 0.0 and r.get("torch_xla_consolidated_diff", 0.0) == 0.0
    print(int(ok), f'save_model loads strictly, diff {r["save_model_diff"]:g}; consolidated shards diff {r.get("consolidated_diff")} (torch_xla: {r.get("torch_xla_consolidated_diff")})')
PYEOF
}

report_check() {  # report_check NAME WHAT ARGS...
  local name="$1"; shift
  local out; out="$(judge "$@" 2>&1 | tail -1)"
  check "$name" "${out%% *}" "${out#* }"
}

started=$SECONDS
"$PY" -c "import torch, torch_xla; print(f'torch {torch.__version__}, torch_xla {torch_xla.__version__}, PJRT_DEVICE=CPU')"
echo "steps=$STEPS  work dir: $WORK"
half=$((STEPS / 2))
if train main main --evaluate; then
  report_check "main: train" trained main "$STEPS"
  report_check "main: evaluate/predict" evaluated main
  report_check "main: save/consolidate" saved main
  if train main-resumed main --resume "$WORK/main/checkpoint-$half"; then
    report_check "main: resume" resumed main-resumed main
  fi
fi
train plain plain
if train full full; then
  report_check "full: train" trained full "$STEPS"
  [ -f "$WORK/plain/report.json" ] && report_check "full: = plain CPU" matches full plain
  if train full-resumed full --resume "$WORK/full/checkpoint-$half"; then
    report_check "full: resume" resumed full-resumed full
  fi
fi
if train bf16 bf16 && [ -f "$WORK/plain/report.json" ]; then
  report_check "bf16: train" bf16 bf16 plain
fi

out="$(timeout 120 "$VENV/bin/torchrun" --nproc_per_node 2 --master_port 29795 "$WORK/refuse.py" 2>&1)"
count="$(grep -o "REFUSED The launcher started 2 processes" <<<"$out" | wc -l | tr -d " ")"
check "2 processes (torchrun)" "$([ "$count" = 2 ] && echo 1 || echo 0)" \
  "refused on $count of 2 processes: PJRT's CPU client makes each a group of one"
out="$(CPU_NUM_DEVICES=2 timeout 120 "$PY" "$WORK/refuse.py" threads 2>&1)"
count="$(grep -o "REFUSED This process drives 2 of the 2 XLA replicas as threads" <<<"$out" | wc -l | tr -d " ")"
check "2 replicas (threads)" "$([ "$count" = 2 ] && echo 1 || echo 0)" \
  "refused on $count of 2 threads (xmp.spawn with CPU_NUM_DEVICES=2)"

cat "$WORK/times.txt" 2>/dev/null
echo "total: $((SECONDS - started))s"
if [ "$FAILED" = 0 ]; then echo "XLA check: PASS"; else echo "XLA check: FAIL (logs in $WORK)"; fi
exit "$FAILED"
