#!/usr/bin/env bash
# Run HERE (a machine that reaches PyPI) before a device check: fetches what the lent GPU
# machine lacks for tools/gpu_check.sh into .whl/ (git-ignored through .git/info/exclude),
# so that the device call only has to carry it:
#
#   tools/gpu_prepare.sh
#   device run: command "bash tools/gpu_check.sh 300", carry [".whl"], timeout_s 540
#
# The GPU image (see the device tool's KINDS.md) has Python 3.12, torch, accelerate,
# transformers, safetensors, psutil, tqdm, ninja, py-cpuinfo, msgpack and einops, but not
# DeepSpeed nor its pydantic/hjson. DeepSpeed is published as a source archive only; the
# check builds it there against the image's torch (no C++ op is compiled at install).
# Our own packages are pure Python and travel with the working tree (PYTHONPATH).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$p")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl \
    "pydantic==2.12.5" "pydantic-core==2.41.5" "annotated-types==0.7.0" \
    "typing-inspection==0.4.2" "hjson==3.1.0"
python3 -m pip download --quiet --no-deps --no-binary=:all: -d .whl "deepspeed==0.19.8"
ls -la .whl
du -sh .whl
