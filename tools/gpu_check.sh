#!/usr/bin/env bash
# GPU check for the trainer-dist runtimes (issue 6). Needs one CUDA GPU (sized for an H200,
# under 8 minutes) and the workspace virtualenv; never part of CI.
#
# Trains a ~100M-parameter causal LM (Llama-style, built from a config: nothing is
# downloaded) in bf16 on synthetic token data for STEPS steps, saving a checkpoint half-way
# and resuming from it once, with:
#   plain       one process, no launcher                        (SingleProcessRuntime)
#   fsdp        torchrun --nproc_per_node 1, fsdp=full_shard    (FSDPRuntime)
#   fsdp-off    the same with CPU offload (the path CPUs cannot test)
#   zero2/zero3 the deepspeed launcher                          (DeepSpeedRuntime)
#   hf          the same workload through transformers' Trainer, for comparison
# and prints, per run: tokens/s, peak GPU memory, the final loss (the last logged window),
# and the same after resuming from the half-way checkpoint (should match the uninterrupted
# run closely; train_loss is not compared, since a resumed run averages only its own steps).
#
# Usage: tools/gpu_check.sh [STEPS]      (default 300)
#        GPU_CHECK_TINY=1 tools/gpu_check.sh 4   smoke-tests the script itself on a CPU
# On the lent GPU machine (no workspace virtualenv there): run tools/gpu_prepare.sh here
# first, then call the device tool with command "bash tools/gpu_check.sh 300" and carry
# [".whl"]; the image's python3 is used, with our packages on PYTHONPATH and DeepSpeed
# installed from .whl/ into /tmp/site.
set -uo pipefail

cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ] && [ ! -x .venv/bin/python ]; then
  PY="$(command -v python3)"
  src="$(printf '%s:' "$PWD"/packages/*/src)"
  export PYTHONPATH="/tmp/site:${src%:}${PYTHONPATH:+:$PYTHONPATH}"
  if [ -d .whl ] && ! "$PY" -c "import deepspeed" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
      .whl/*.whl && "$PY" -m pip install -q --no-index --no-deps --no-build-isolation \
      --no-compile --no-cache-dir --target /tmp/site .whl/deepspeed-*.tar.gz \
      || echo "installing DeepSpeed from .whl/ failed: zero2/zero3 will be skipped"
  fi
fi
PY="${PY:-.venv/bin/python}"
STEPS="${1:-300}"
WORK="$(mktemp -d)"
SCRIPT="$WORK/gpu_check_run.py"
export OMP_NUM_THREADS=4 TOKENIZERS_PARALLELISM=false

cat >"$SCRIPT" <<'PYEOF'
import argparse, json, os, sys, time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--impl", choices=["ours", "hf"], default="ours")
parser.add_argument("--variant", default="plain")
parser.add_argument("--out", required=True)
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--resume", default=None)
options, _ = parser.parse_known_args()

from transformers import LlamaConfig, LlamaForCausalLM

if options.impl == "hf":
    from transformers import Trainer, TrainingArguments
else:
    from trainer import Trainer, TrainingArguments

TINY = os.environ.get("GPU_CHECK_TINY") == "1"
SEQ, BATCH = (64, 2) if TINY else (512, 8)
CUDA = torch.cuda.is_available()


class Tokens(torch.utils.data.Dataset):
    """Synthetic but learnable: each sequence counts up from a random start (mod vocab)."""

    def __init__(self, size, vocab):
        generator = torch.Generator().manual_seed(0)
        self.starts = torch.randint(0, vocab, (size,), generator=generator)
        self.vocab = vocab

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        ids = (self.starts[i] + torch.arange(SEQ)) % self.vocab
        return {"input_ids": ids, "labels": ids.clone()}


torch.manual_seed(0)
size = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2) if TINY else dict(
    hidden_size=768, intermediate_size=2048, num_hidden_layers=10
)
config = LlamaConfig(
    vocab_size=32000, num_attention_heads=4 if TINY else 12, max_position_embeddings=SEQ, **size
)
model = LlamaForCausalLM(config)
params = sum(p.numel() for p in model.parameters())
extra = {}
if options.variant.startswith("fsdp"):
    extra["fsdp"] = "full_shard auto_wrap" + (" offload" if options.variant == "fsdp-off" else "")
    extra["fsdp_config"] = {"transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]}
if options.variant in ("zero2", "zero3"):
    extra["deepspeed"] = {
        "zero_optimization": {"stage": int(options.variant[-1])},
        "bf16": {"enabled": True},
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
    }
args = TrainingArguments(
    output_dir=options.out, max_steps=options.steps, per_device_train_batch_size=BATCH,
    learning_rate=3e-4, warmup_steps=20, bf16=True, logging_steps=max(1, min(20, options.steps // 4)),
    save_strategy="steps", save_steps=options.steps // 2, report_to="none",
    disable_tqdm=True, seed=0, dataloader_num_workers=0 if TINY else 2, use_cpu=not CUDA,
    **extra,
)
trainer = Trainer(model=model, args=args, train_dataset=Tokens(BATCH * options.steps, 32000))
try:  # transformers' save_pretrained imports DeepSpeed when it is installed (seconds):
    import deepspeed  # noqa: F401  # paid here, outside the timed training, for both loops
except ImportError:
    pass
if CUDA:
    torch.cuda.reset_peak_memory_stats()
start = time.time()
result = trainer.train(resume_from_checkpoint=options.resume)
elapsed = time.time() - start
steps_run = options.steps - (options.steps // 2 if options.resume else 0)
losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
report = {
    "params_m": round(params / 1e6, 1),
    "tokens_per_s": round(steps_run * BATCH * SEQ / elapsed),
    "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if CUDA else None,
    "final_loss": losses[-1] if losses else result.training_loss,
    "train_loss": result.training_loss,
}
if int(os.environ.get("RANK", "0")) == 0:
    with open(os.path.join(options.out, "report.json"), "w") as handle:
        json.dump(report, handle)
PYEOF

run() {  # run NAME "SCRIPT OPTIONS" LAUNCHER...: the workload, then a resume from half-way
  local name="$1" opts="$2"; shift 2
  local out="$WORK/$name"
  mkdir -p "$out"
  local started=$SECONDS
  # shellcheck disable=SC2086  # opts is a list of words on purpose
  if ! timeout 150 "$@" "$SCRIPT" $opts --out "$out" --steps "$STEPS" >"$out/log.txt" 2>&1; then
    printf '%-9s FAILED (%ss): %s\n' "$name" $((SECONDS - started)) "$(grep -m1 -E 'Error|error' "$out/log.txt")"
    return
  fi
  local full; full="$(cat "$out/report.json")"
  rm -f "$out/report.json"
  local resumed="(resume failed)"
  # shellcheck disable=SC2086
  if timeout 120 "$@" "$SCRIPT" $opts --out "$out" --steps "$STEPS" \
      --resume "$out/checkpoint-$((STEPS / 2))" >"$out/resume.txt" 2>&1; then
    resumed="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["final_loss"])' "$out/report.json")"
  fi
  printf '%-9s %s  resumed final_loss=%s  (%ss)\n' "$name" "$full" "$resumed" $((SECONDS - started))
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"
echo "steps=$STEPS  work dir: $WORK"
run plain    "--variant plain"    "$PY"
run fsdp     "--variant fsdp"     "$PY" -m torch.distributed.run --nproc_per_node 1 --master_port 29731
run fsdp-off "--variant fsdp-off" "$PY" -m torch.distributed.run --nproc_per_node 1 --master_port 29732
if "$PY" -c "import deepspeed" 2>/dev/null; then
  run zero2  "--variant zero2" "$PY" -m deepspeed.launcher.runner --num_gpus 1 --master_port 29733
  run zero3  "--variant zero3" "$PY" -m deepspeed.launcher.runner --num_gpus 1 --master_port 29734
else
  echo "zero2/zero3 skipped: deepspeed is not installed (uv sync installs it with the dev group)"
fi
run hf       "--impl hf --variant plain" "$PY"

# CUDA_VISIBLE_DEVICES / CUDA_DEVICE_ORDER are CUDA's own: the runtime must see exactly the
# devices they leave visible (none: the CPU; one: cuda:0).
visible() {
  "$PY" - <<'PYEOF'
import torch
from trainer import TrainingArguments
from trainer_dist import build_runtime
runtime = build_runtime(TrainingArguments(output_dir="/tmp/visible", report_to="none"))
print(f"visible={torch.cuda.device_count()} device={runtime.device} n_gpu={runtime.n_gpu}")
PYEOF
}
echo "CUDA_VISIBLE_DEVICES='':  $(CUDA_VISIBLE_DEVICES= visible 2>&1 | tail -1)"
echo "CUDA_VISIBLE_DEVICES=0 CUDA_DEVICE_ORDER=PCI_BUS_ID:  $(CUDA_VISIBLE_DEVICES=0 CUDA_DEVICE_ORDER=PCI_BUS_ID visible 2>&1 | tail -1)"
