#!/usr/bin/env bash
# Set up and run every test, the way CI does.
#
# 1. Each package's own tests, in an environment holding only that package, its declared
#    dependencies and its dev group (`uv run --exact --package`): a package that silently
#    relies on something it does not declare fails here.
# 2. The integration tests in the workspace environment (`uv sync`), and the package tests
#    that step 1 skipped for want of a library outside their package (the root
#    conftest.py lists them in the file TRAINER_TEST_SKIP_LOG names). Every test runs
#    once, in the narrowest environment that can run it.
#
# Arguments are passed to step 2's pytest. `uv run pytest` runs everything at once.
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
skipped="$(mktemp -t trainer-skipped-XXXXXX)"
trap 'rm -f "${skipped}"' EXIT
export TRAINER_TEST_SKIP_LOG="${skipped}"
for package_dir in packages/*/; do
    package=$(basename "$package_dir")
    echo "=== ${package}: tests with only ${package} and its declared dependencies"
    if ! UV_PROJECT_ENVIRONMENT=".venvs/${package}" uv run --quiet --exact --frozen \
        --package "${package}" pytest "packages/${package}/tests" -q -p no:cacheprovider; then
        echo "=== ${package}: FAILED"
        status=1
    fi
done
unset TRAINER_TEST_SKIP_LOG

echo "=== integration tests, and the $(sort -u "${skipped}" | wc -l) package test(s) skipped above, in the whole workspace"
sort -u "${skipped}" -o "${skipped}"
uv sync --frozen --quiet
if ! uv run --frozen pytest -q -p no:cacheprovider integration_tests "@${skipped}" "$@"; then
    status=1
fi
exit $status
