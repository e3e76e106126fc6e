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
# Two streams run side by side, because one alone leaves a core of the two idle:
#   - the integration tests marked `multiprocess` (launches of process groups; most of
#     the suite's time, and mostly spent starting Python processes), shown as they run;
#   - step 1, then the other integration tests, then the package tests step 1 skipped,
#     written to a log that is shown when both streams are done.
# Each stream has a pytest temporary folder of its own.
#
# Arguments are passed to every integration pytest. `uv run pytest` runs everything at
# once, in one stream.
#
# pytest's exit status 5 ("no tests collected") counts as a failure, except where
# arguments narrowed a selection to nothing (one of the two integration selections, or the
# skipped package tests).
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

work="$(mktemp -d -t trainer-tests-XXXXXX)"
trap 'rm -rf "${work}"' EXIT
skipped="${work}/skipped.txt"
touch "${skipped}"

# pytest with the repository's options, its temporary folders under ${work}/$1.
integration_pytest() {
    local name="$1"
    shift
    uv run --frozen pytest -q -p no:cacheprovider --basetemp "${work}/${name}" "$@"
}

package_tests() {
    local status=0 package_dir package
    for package_dir in packages/*/; do
        package=$(basename "$package_dir")
        echo "=== ${package}: tests with only ${package} and its declared dependencies"
        if ! TRAINER_TEST_SKIP_LOG="${skipped}" UV_PROJECT_ENVIRONMENT=".venvs/${package}" \
            uv run --quiet --exact --frozen --package "${package}" \
            pytest "packages/${package}/tests" -q -p no:cacheprovider \
            --basetemp "${work}/${package}"; then
            echo "=== ${package}: FAILED"
            status=1
        fi
    done
    return $status
}

# Exit status 5 of one selection is fine when the other selection ran tests.
selections_passed() {
    local first="$1" second="$2"
    [[ "$first" == 0 && "$second" == 0 ]] && return 0
    [[ "$first" == 0 && "$second" == 5 ]] && return 0
    [[ "$first" == 5 && "$second" == 0 ]] && return 0
    return 1
}

uv sync --frozen --quiet

echo "=== integration tests marked multiprocess (the other tests run beside them; their log follows)"
integration_pytest multiprocess -m multiprocess integration_tests "$@" &
multiprocess_pid=$!

(
    status=0
    package_tests || status=1
    echo "=== integration tests not marked multiprocess, in the whole workspace"
    set +e
    integration_pytest others -m "not multiprocess" integration_tests "$@"
    echo "$?" >"${work}/others.status"
    sort -u "${skipped}" -o "${skipped}"
    if [[ -s "${skipped}" ]]; then
        echo "=== the $(wc -l <"${skipped}") package test(s) skipped above, in the whole workspace"
        integration_pytest skipped "@${skipped}" "$@"
        skipped_status=$?
        # Arguments may narrow this selection to nothing (exit status 5).
        if [[ "$skipped_status" != 0 && ! ("$skipped_status" == 5 && $# -gt 0) ]]; then
            echo "=== skipped package tests: FAILED"
            status=1
        fi
    fi
    exit $status
) >"${work}/others.log" 2>&1 &
others_pid=$!

set +e
wait "$multiprocess_pid"
multiprocess_status=$?
wait "$others_pid"
packages_status=$?
set -e

cat "${work}/others.log"
others_status="$(cat "${work}/others.status" 2>/dev/null || echo 1)"
status=0
if [[ "$packages_status" != 0 ]]; then
    echo "=== package tests: FAILED (see above)"
    status=1
fi
if ! selections_passed "$multiprocess_status" "$others_status"; then
    echo "=== integration tests: FAILED (multiprocess: exit ${multiprocess_status}, others: exit ${others_status})"
    status=1
fi
exit $status
