"""What each package's wheel promises, checked from the sources without building them.

Users install the packages one by one from built wheels, not from this workspace, where
every package sees every other. These tests read each ``pyproject.toml`` and the
sources (``ast``, nothing imported) for what a wheel would get wrong: a module outside
the package's own import package, a missing ``py.typed``, a third-party import that no
requirement brings, an unversioned requirement, an error message naming an extra that
does not exist. ``tools/check_wheels.sh`` builds and installs the wheels for real.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
PACKAGES = REPO / "packages"

TESTED_MINIMUMS = {
    "torch": "2.6",  # torch.distributed.fsdp.fully_shard is public from 2.6 (FSDP2)
    "numpy": "1.25",  # 1.24's uint32 dtype class is not np.dtypes.UInt32DType: no resume
    "accelerate": "1.0",
    "safetensors": "0.4",
    "pyyaml": "6",
    "tqdm": "4.60",
    "psutil": "5.9",
}
"""The lowest versions ``CHECK_WHEELS_LOWEST=1 tools/check_wheels.sh`` passed with; a
lower bound under one of them promises what nobody has run."""

GUARDED_ELSEWHERE = {
    ("trainer-checkpoint", "torch_xla"): "imported only when the process already has it",
    ("trainer-dist", "transformers"): "ZeRO-3 registration, after a find_spec check",
    ("trainer-dist", "torch_xla"): "import_optional names `pip install torch-xla`",
    ("trainer-loop", "transformers"): "only for models whose class comes from transformers",
    ("trainer-loop", "bitsandbytes"): "only once a bitsandbytes optimizer class was built",
    ("trainer-testing", "transformers"): "tiny_llama() is for tests that use transformers",
    ("trainer-testing", "huggingface_hub"): "the stand-in Hub's client set-up, on use",
    ("trainer-testing", "sigopt"): "the stand-in SigOpt server's client set-up, on use",
    ("trainer-testing", "wandb"): "the offline W&B helper, for tests that use wandb",
    ("trainer-testing", "google"): "protobuf's DecodeError, in that helper (wandb brings it)",
}
"""Third-party imports a package does not declare, each behind a guard other than
``try: ... except ImportError`` (which the scan recognises by itself), with the reason."""

_LOWER = {">=", ">", "~=", "=="}

_INSTALL_COMMAND = re.compile(r"pip install '?(trainer(?:-[a-z]+)?)\[([a-z,{}<>]+)\]")


@dataclass(frozen=True)
class Package:
    directory: Path
    project: dict

    @property
    def name(self) -> str:
        return self.project["name"]

    @property
    def module(self) -> str:
        return self.name.replace("-", "_")

    @property
    def requirements(self) -> list[Requirement]:
        return [Requirement(r) for r in self.project.get("dependencies", [])]

    @property
    def extras(self) -> dict[str, list[Requirement]]:
        optional = self.project.get("optional-dependencies", {})
        return {extra: [Requirement(r) for r in reqs] for extra, reqs in optional.items()}

    def sources(self) -> list[Path]:
        return sorted((self.directory / "src").rglob("*.py"))


@cache
def packages() -> dict[str, Package]:
    found = {}
    for path in sorted(PACKAGES.glob("*/pyproject.toml")):
        package = Package(path.parent, tomllib.loads(path.read_text())["project"])
        found[package.name] = package
    return found


def _all_requirements(package: Package) -> list[Requirement]:
    return package.requirements + [r for reqs in package.extras.values() for r in reqs]


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` sits in a ``try`` body whose handlers catch a failed import."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                names = ast.unparse(handler.type) if handler.type else "BaseException"
                if re.search(r"\b(ImportError|ModuleNotFoundError|Exception)\b", names):
                    return True
        child, parent = parent, parents.get(parent)
    return False


def _unguarded_imports(path: Path) -> set[str]:
    """Top-level module names imported in ``path`` outside an ImportError guard."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        if not _guarded(node, parents):
            found.update(module.split(".")[0] for module in modules)
    return found


@cache
def _module_owners() -> dict[str, list[str]]:
    return packages_distributions()  # the workspace environment has every extra installed


def _distributions_of(module: str) -> set[str]:
    return {canonicalize_name(d) for d in _module_owners().get(module, [module])}


@pytest.mark.parametrize("name", sorted(packages()))
def test_wheel_holds_one_typed_import_package_and_no_tests(name: str) -> None:
    package = packages()[name]
    src = package.directory / "src"
    assert sorted(p.name for p in src.iterdir() if p.name != "__pycache__") == [package.module]
    assert (src / package.module / "__init__.py").is_file()
    assert (src / package.module / "py.typed").is_file(), "type hints ship only with py.typed"
    assert not list((src / package.module).rglob("test_*.py")), "tests belong in tests/"
    backend = tomllib.loads((package.directory / "pyproject.toml").read_text())["build-system"]
    assert backend["build-backend"] == "uv_build", "uv_build packages src/<dist_name> only"


@pytest.mark.parametrize("name", sorted(packages()))
def test_metadata_pypi_shows(name: str) -> None:
    project = packages()[name].project
    assert project["description"] and project["license"] and project["requires-python"]
    readme = (packages()[name].directory / project["readme"]).read_text(encoding="utf-8")
    assert len(readme) > 1000, "the README is the long description on PyPI: say more"
    assert project["version"] == packages()["trainer"].project["version"], "one release"
    # Apache-2.0 asks for its text to travel with the code: each wheel ships it.
    assert project.get("license-files") == ["LICENSE"]
    license_text = (packages()[name].directory / "LICENSE").read_text(encoding="utf-8")
    assert license_text == (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0" in license_text


@pytest.mark.parametrize("name", sorted(packages()))
def test_requirements_carry_version_ranges(name: str) -> None:
    """A requirement on a sibling admits this release series only; a third-party one has
    a lower bound no lower than the versions the lowest-install check ran with."""
    for requirement in _all_requirements(packages()[name]):
        target = packages().get(canonicalize_name(requirement.name))
        if target is not None and target.name == name:
            continue  # trainer[all] -> trainer[wandb]: the same distribution
        assert requirement.specifier, f"{name}: {requirement} has no version range"
        if target is not None:
            version = Version(target.project["version"])
            assert requirement.specifier.contains(version), f"{name}: {requirement}"
            next_minor = Version(f"{version.major}.{version.minor + 1}.0")
            assert not requirement.specifier.contains(next_minor), f"{name}: {requirement}"
            continue
        lower = [Version(s.version) for s in requirement.specifier if s.operator in _LOWER]
        assert lower, f"{name}: {requirement} has no lower bound"
        tested = TESTED_MINIMUMS.get(canonicalize_name(requirement.name))
        if tested is not None:
            assert max(lower) >= Version(tested), (
                f"{name}: {requirement} admits versions below the tested {tested}"
            )


@pytest.mark.parametrize("name", sorted(packages()))
def test_every_unguarded_import_is_declared(name: str) -> None:
    """A module the package imports outside an ImportError guard must come with it: from
    its dependencies or one of its extras (the modules needing an extra import it on use)."""
    package = packages()[name]
    ours = {p.module: p.name for p in packages().values()}
    declared = {canonicalize_name(r.name) for r in _all_requirements(package)}
    missing = []
    for path in package.sources():
        for module in _unguarded_imports(path):
            if module in {*sys.stdlib_module_names, "__future__", package.module}:
                continue
            if module in ours:
                if ours[module] not in declared:
                    missing.append(f"{path.name}: {module} ({ours[module]} is not declared)")
                continue
            if (name, module) in GUARDED_ELSEWHERE or _distributions_of(module) & declared:
                continue
            missing.append(f"{path.name}: {module}")
    assert not missing, f"{name} imports what it does not declare: {missing}"


def _install_commands() -> list[tuple[str, str, str]]:
    """Every ``pip install 'trainer-x[extra]'`` our sources and READMEs tell users."""
    found = []
    files = [p for package in packages().values() for p in package.sources()]
    files += [package.directory / "README.md" for package in packages().values()]
    files += [PACKAGES.parent / "README.md"]
    for path in files:
        for match in _INSTALL_COMMAND.finditer(path.read_text(encoding="utf-8")):
            for extra in match.group(2).split(","):
                found.append((str(path.relative_to(PACKAGES.parent)), match.group(1), extra))
    return found


def test_install_commands_in_messages_and_readmes_name_real_extras() -> None:
    commands = _install_commands()
    assert any(dist == "trainer-reporting" for _, dist, _ in commands)  # the scan works
    wrong = [
        f"{where}: {dist}[{extra}]"
        for where, dist, extra in commands
        if not extra.startswith(("{", "<")) and extra not in packages()[dist].extras
    ]
    assert not wrong, f"install commands naming extras that do not exist: {wrong}"


def test_missing_extra_errors_name_extras_that_bring_the_module() -> None:
    """``import_optional(module, package=..., extra=...)`` and the search backends'
    ``require(module, ...)`` tell users to install ``package[extra]`` and, in the same
    message, ``trainer[extra]``: both extras must exist and bring ``module``."""
    calls = []
    for package in packages().values():
        for path in package.sources():
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                callee = ast.unparse(node.func)
                keywords = {k.arg: k.value for k in node.keywords}
                module = node.args[0]
                if not isinstance(module, ast.Constant):
                    continue
                if callee == "import_optional" and isinstance(keywords["extra"], ast.Constant):
                    extra = keywords["extra"].value
                    if extra is not None:
                        calls.append((module.value, keywords["package"].value, extra))
                elif callee == "require" and package.name == "trainer-hpsearch":
                    calls.append((module.value, package.name, module.value.split(".")[0]))
    assert {extra for _, _, extra in calls} >= {"deepspeed", "wandb", "mlflow", "optuna", "hub"}
    for module, dist, extra in calls:
        brought = {canonicalize_name(r.name) for r in packages()[dist].extras.get(extra, [])}
        assert _distributions_of(module.split(".")[0]) & brought, f"{dist}[{extra}]: {module}"
        assert extra in packages()["trainer"].extras, f"no trainer[{extra}] to forward to"


def test_entry_points_name_own_objects_and_real_extras() -> None:
    for package in packages().values():
        for group, entries in package.project.get("entry-points", {}).items():
            for name, target in entries.items():
                match = re.fullmatch(r"([\w.]+):(\w+)(?: \[([\w,]+)\])?", target)
                assert match, f"{package.name} {group}.{name}: {target}"
                module, attribute, extras = match.groups()
                assert module.split(".")[0] == package.module, f"{target} is not its own"
                init = (package.directory / "src" / package.module / "__init__.py").read_text()
                assert re.search(rf"\b{attribute}\b", init), f"{target}: not exported"
                for extra in (extras or "").split(",") if extras else []:
                    assert extra in package.extras, f"{target}: no extra {extra}"


def test_meta_package_forwards_every_extra() -> None:
    """``trainer[x]`` exists for every extra of the packages it installs, and ``[all]``
    names them all."""
    meta = packages()["trainer"]
    for requirement in meta.requirements:
        for extra in packages()[canonicalize_name(requirement.name)].extras:
            forwarded = meta.extras.get(extra, [])
            assert any(extra in r.extras for r in forwarded), f"trainer[{extra}] missing"
    everything = {extra for r in meta.extras["all"] for extra in r.extras}
    assert everything == set(meta.extras) - {"all"}
