#!/usr/bin/env bash
# Set up and run every test, the way CI does.
#
# 1. Each package's own tests, in an environment holding only that package, its declared
#    dependencies and its dev group (`uv run --exact --package`): a package that silently
#    relies on something it does not declare fails here.
# 2. The whole suite (unit + integration) in the workspace environment (`uv sync`).
#
# pytest's exit status 5 ("no tests collected") counts as a failure in both steps.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v uv >/dev/null 2>&1; then
    uv() { command uv "$@"; }
else
    python3 -m pip install --quiet uv
    uv() { python3 -m uv "$@"; }
fi

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# The integration tests start a few hundred Python processes (torchrun, accelerate,
# deepspeed workers), each importing torch and often transformers. uv installs no
# bytecode, so with PYTHONDONTWRITEBYTECODE set (some machines set it for every shell)
# each of them compiles those libraries from source again: about 10 s a process, twice
# the suite's time. Let Python cache the bytecode of what is imported.
unset PYTHONDONTWRITEBYTECODE
status=0
for package_dir in packages/*/; do
    package=$(basename "$package_dir")
    echo "=== ${package}: tests with only ${package} and its declared dependencies"
    if ! UV_PROJECT_ENVIRONMENT=".venvs/${package}" uv run --quiet --exact --frozen \
        --package "${package}" pytest "packages/${package}/tests" -q -p no:cacheprovider; then
        echo "=== ${package}: FAILED"
        status=1
    fi
done

echo "=== whole suite"
uv sync --frozen --quiet
if ! uv run --frozen pytest -q -p no:cacheprovider "$@"; then
    status=1
fi
exit $status
