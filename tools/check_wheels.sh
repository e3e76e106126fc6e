#!/usr/bin/env bash
# Build every package's wheel and sdist, then install each wheel on its own in a fresh
# virtual environment and run a smoke script against the installed copy.
#
# What users get from PyPI is a built wheel, not the workspace: this catches a module
# left out of a wheel, a dependency used but not declared, an extra that does not bring
# what its error message promises, a plugin missing from entry_points.txt. The cheap,
# static half of these checks runs in CI (integration_tests/test_distributions.py); this
# one needs the network (PyPI, for third-party dependencies) and a few minutes, so a
# person runs it before a release:
#
#     tools/check_wheels.sh                      # every scenario below
#     tools/check_wheels.sh trainer-loop trainer-hpsearch-optuna
#     CHECK_WHEELS_ALL=1 tools/check_wheels.sh   # also trainer[all] (builds deepspeed)
#     CHECK_WHEELS_LOWEST=1 tools/check_wheels.sh trainer-args trainer-loop
#                                                # the lowest declared direct versions
#
# Our own wheels come from the build folder (--find-links), which uv prefers to PyPI:
# PyPI holds unrelated projects named `trainer` and `trainer-loop`, and each environment
# is checked afterwards to hold our copies. torch comes from uv's cache after the first
# install (about 5 GB with its CUDA libraries; uv links the files, so each further
# environment costs seconds). Each line of the summary gives the install time, the size
# of the environment's site-packages and the smoke script's result.
set -euo pipefail
cd "$(dirname "$0")/.."

python_version="${CHECK_WHEELS_PYTHON:-3.11}"
work="${CHECK_WHEELS_DIR:-$(mktemp -d -t check-wheels-XXXXXX)}"
wheels="${work}/wheels"
smoke_dir="$(pwd)/tools/wheel_smoke"
resolution=()
if [[ "${CHECK_WHEELS_LOWEST:-0}" == 1 ]]; then
    resolution=(--resolution lowest-direct)
fi

# scenario name | requirements to install | smoke script (tools/wheel_smoke/)
scenarios=(
    "trainer-core|trainer-core|trainer-core.py"
    "trainer-args|trainer-args|trainer-args.py"
    "trainer-checkpoint|trainer-checkpoint|trainer-checkpoint.py"
    "trainer-dist|trainer-dist|trainer-dist.py"
    "trainer-loop|trainer-loop|trainer-loop.py"
    "trainer-reporting|trainer-reporting|trainer-reporting.py"
    "trainer-reporting-tensorboard|trainer-reporting[tensorboard] trainer-loop|trainer-reporting-tensorboard.py"
    "trainer-hpsearch|trainer-hpsearch|trainer-hpsearch.py"
    "trainer-hpsearch-optuna|trainer-hpsearch[optuna] trainer-loop|trainer-hpsearch-optuna.py"
    "trainer-testing|trainer-testing|trainer-testing.py"
    "trainer-testing-torch|trainer-testing[torch]|trainer-testing-torch.py"
    "trainer|trainer|trainer-meta.py"
)
if [[ "${CHECK_WHEELS_ALL:-0}" == 1 ]]; then
    scenarios+=("trainer-all|trainer[all]|trainer-meta.py")
fi

wanted=("$@")
selected() {
    [[ ${#wanted[@]} -eq 0 ]] && return 0
    local name
    for name in "${wanted[@]}"; do [[ "$name" == "$1" ]] && return 0; done
    return 1
}

# The third-party requirements (with the extras asked for) of the given requirements of
# ours and of every package of ours they pull in, one a line, as their pyproject.toml
# files declare them.
declared_requirements() {
    uv run --no-project --quiet --python "${python_version}" python - "$@" <<'PY'
import re
import sys
import tomllib
from pathlib import Path

projects = {}
for path in Path("packages").glob("*/pyproject.toml"):
    project = tomllib.loads(path.read_text())["project"]
    projects[project["name"]] = project
pattern = re.compile(r"^([A-Za-z0-9._-]+)(?:\[([^\]]*)\])?")
todo = list(sys.argv[1:])
seen, found = set(), []
while todo:
    name, extras = pattern.match(todo.pop()).groups()
    if (name, extras) in seen:
        continue
    seen.add((name, extras))
    project = projects[name]
    wanted = list(project.get("dependencies", []))
    for extra in (extras or "").split(","):
        wanted += project.get("optional-dependencies", {}).get(extra.strip(), [])
    for requirement in wanted:
        other = pattern.match(requirement).group(1)
        if other in projects:
            todo.append(requirement.split("~=")[0])
        elif requirement not in found:
            found.append(requirement)
print("\n".join(found))
PY
}

echo "=== building every package into ${wheels}"
uv build --all-packages --quiet -o "${wheels}"

echo "=== inspecting the wheels and sdists"
uv run --no-project --quiet --python "${python_version}" python - "${wheels}" <<'PY'
"""Every wheel holds its own import package only, py.typed, a README as description,
the metadata fields PyPI shows; every sdist can be rebuilt (pyproject, README, sources)."""
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

wheels = Path(sys.argv[1])
problems = []
for project in sorted(Path("packages").glob("*/pyproject.toml")):
    meta = tomllib.loads(project.read_text())["project"]
    name, version = meta["name"], meta["version"]
    stem = f"{name.replace('-', '_')}-{version}"
    module = name.replace("-", "_")
    with zipfile.ZipFile(wheels / f"{stem}-py3-none-any.whl") as wheel:
        files = wheel.namelist()
        metadata = Parser().parsestr(wheel.read(f"{stem}.dist-info/METADATA").decode())
        entry_points = (
            wheel.read(f"{stem}.dist-info/entry_points.txt").decode()
            if f"{stem}.dist-info/entry_points.txt" in files else ""
        )
    stray = [f for f in files if not f.startswith((f"{module}/", f"{stem}.dist-info/"))]
    stray += [f for f in files if "/tests/" in f or "__pycache__" in f or f.endswith(".pyc")]
    if stray:
        problems.append(f"{name}: files outside {module}/: {stray}")
    if f"{module}/py.typed" not in files:
        problems.append(f"{name}: no py.typed")
    for field in ("Summary", "License-Expression", "Requires-Python"):
        if not metadata.get(field):
            problems.append(f"{name}: no {field} in METADATA")
    if len(metadata.get_payload()) < 200:
        problems.append(f"{name}: the long description (README) is under 200 characters")
    for group, entries in meta.get("entry-points", {}).items():
        for entry in entries:
            if f"{entry} = " not in entry_points:
                problems.append(f"{name}: entry point {group}:{entry} not in the wheel")
    with tarfile.open(wheels / f"{stem}.tar.gz") as sdist:
        members = {m.name.removeprefix(f"{stem}/") for m in sdist.getmembers()}
    for needed in ("pyproject.toml", "README.md", f"src/{module}/__init__.py", f"src/{module}/py.typed"):
        if needed not in members:
            problems.append(f"{name}: sdist lacks {needed}")
    sources = {f.removeprefix("src/") for f in members if f.startswith("src/") and f.endswith(".py")}
    if sources != {f for f in files if f.endswith(".py")}:
        problems.append(f"{name}: the sdist's and the wheel's modules differ")
    print(f"{name}: {len(files)} files in the wheel, {len(members)} in the sdist, "
          f"{len(metadata.get_all('Requires-Dist') or [])} requirements, "
          f"extras {metadata.get_all('Provides-Extra') or []}")
if problems:
    sys.exit("\n".join(problems))
PY

summary=()
status=0
for scenario in "${scenarios[@]}"; do
    IFS='|' read -r name requirements smoke <<<"${scenario}"
    selected "${name}" || continue
    env="${work}/envs/${name}"
    echo "=== ${name}: ${requirements}"
    rm -rf "${env}"
    uv venv --quiet --python "${python_version}" "${env}"
    started=${SECONDS}
    direct=()
    if [[ ${#resolution[@]} -gt 0 ]]; then
        # lowest-direct lowers only the requirements named here: name every third-party
        # requirement our packages declare, so that each gets its declared lower bound.
        # shellcheck disable=SC2086
        mapfile -t direct < <(declared_requirements ${requirements})
        echo "lowest declared: ${direct[*]}"
    fi
    # shellcheck disable=SC2086  # the requirements are several words on purpose
    if ! uv pip install --quiet --python "${env}/bin/python" --find-links "${wheels}" \
        "${resolution[@]}" ${requirements} "${direct[@]}"; then
        summary+=("${name}: INSTALL FAILED")
        status=1
        continue
    fi
    seconds=$((SECONDS - started))
    size=$(du -sh "$("${env}/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" | cut -f1)
    # The installed distributions named like ours must be ours (our wheels' version).
    if ! "${env}/bin/python" - "${wheels}" <<'PY'
import sys
from importlib.metadata import distributions
from pathlib import Path

ours = {p.name.split("-")[0].replace("_", "-"): p.name.split("-")[1]
        for p in Path(sys.argv[1]).glob("*.whl")}
for dist in distributions():
    name = dist.metadata["Name"].lower().replace("_", "-")
    if name in ours and dist.version != ours[name]:
        sys.exit(f"{name} {dist.version} is not ours ({ours[name]}): it came from PyPI")
PY
    then
        summary+=("${name}: NOT OUR WHEELS")
        status=1
        continue
    fi
    # Run from an empty folder so that nothing imports the workspace's sources.
    if (cd "${work}" && OMP_NUM_THREADS=1 "${env}/bin/python" "${smoke_dir}/${smoke}"); then
        summary+=("${name}: ok (install ${seconds}s, site-packages ${size})")
    else
        summary+=("${name}: SMOKE FAILED (install ${seconds}s, site-packages ${size})")
        status=1
    fi
    [[ -n "${CHECK_WHEELS_KEEP:-}" ]] || rm -rf "${env}"
done

echo "=== summary (${work})"
printf '%s\n' "${summary[@]}"
exit ${status}
