"""A plugin that is installed but cannot be used fails when it is loaded, naming itself.

Each case is a real distribution (a ``*.dist-info`` with ``entry_points.txt``) put on
``sys.path``, which is how an installed third-party plugin looks to the loader.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer_core import (
    HP_SEARCH_BACKENDS_GROUP,
    REPORT_TO_GROUP,
    MissingExtraError,
    PluginLoadError,
    TrainerCallback,
    load_plugin,
)

MODULES = {
    "demo_reporters": """\
        from trainer_core import TrainerCallback

        class Good(TrainerCallback):
            name = "demo_good"

        class Other(TrainerCallback):
            name = "demo_twice"

        class Same(TrainerCallback):
            name = "demo_same_target"

        class Misnamed(TrainerCallback):
            name = "something_else"

        class NoName(TrainerCallback):
            pass

        def a_function():
            return None

        INSTANCE = Good()

        class NotABackend:
            name = "demo_not_a_backend"
        """,
    "demo_reporters_copy": """\
        from trainer_core import TrainerCallback

        class Twice(TrainerCallback):
            name = "demo_twice"
        """,
    "demo_explodes": "raise RuntimeError('boom while importing')\n",
    "demo_needs_extra": """\
        from trainer_core import import_optional

        import_optional("no_such_module_for_trainer_tests", package="demo", extra="x", feature="D")
        """,
    "demo_needs_dependency": "import no_such_dependency_for_trainer_tests\n",
}

DISTRIBUTIONS = {
    "demo-reporters": f"""\
        [{REPORT_TO_GROUP}]
        demo_good = demo_reporters:Good
        demo_twice = demo_reporters:Other
        demo_same_target = demo_reporters:Same
        demo_misnamed = demo_reporters:Misnamed
        demo_no_name = demo_reporters:NoName
        demo_function = demo_reporters:a_function
        demo_instance = demo_reporters:INSTANCE
        demo_explodes = demo_explodes:Reporter
        demo_gone = demo_module_that_is_gone:Reporter
        demo_missing_attribute = demo_reporters:Nowhere
        demo_needs_extra = demo_needs_extra:Reporter
        demo_needs_dependency = demo_needs_dependency:Reporter [fancy]

        [{HP_SEARCH_BACKENDS_GROUP}]
        demo_not_a_backend = demo_reporters:NotABackend
        """,
    "demo-reporters-copy": f"""\
        [{REPORT_TO_GROUP}]
        demo_twice = demo_reporters_copy:Twice
        demo_same_target = demo_reporters:Same
        """,
}


@pytest.fixture(autouse=True)
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for module, source in MODULES.items():
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    for dist, entry_points in DISTRIBUTIONS.items():
        dist_info = tmp_path / f"{dist.replace('-', '_')}-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (dist_info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in MODULES:
        sys.modules.pop(module, None)


def test_a_well_formed_reporter_class_loads() -> None:
    loaded = load_plugin(REPORT_TO_GROUP, "demo_good")
    assert isinstance(loaded, type) and issubclass(loaded, TrainerCallback)


def test_an_import_error_names_the_plugin_and_its_package() -> None:
    with pytest.raises(PluginLoadError, match=r"'demo_explodes'.*from demo-reporters") as caught:
        load_plugin(REPORT_TO_GROUP, "demo_explodes")
    assert "RuntimeError: boom while importing" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert isinstance(caught.value, ImportError)
    assert caught.value.providers == ["demo-reporters"]


def test_metadata_left_behind_by_a_removed_package_says_so() -> None:
    with pytest.raises(PluginLoadError, match=r"'demo_module_that_is_gone' is not installed"):
        load_plugin(REPORT_TO_GROUP, "demo_gone")


def test_a_missing_object_names_the_entry_point() -> None:
    with pytest.raises(PluginLoadError, match=r"demo_reporters:Nowhere.*AttributeError"):
        load_plugin(REPORT_TO_GROUP, "demo_missing_attribute")


def test_a_missing_dependency_of_a_plugin_with_extras_gives_the_install_command() -> None:
    with pytest.raises(PluginLoadError, match=r"pip install 'demo-reporters\[fancy\]'"):
        load_plugin(REPORT_TO_GROUP, "demo_needs_dependency")


def test_a_missing_extra_error_passes_unchanged() -> None:
    with pytest.raises(MissingExtraError) as caught:
        load_plugin(REPORT_TO_GROUP, "demo_needs_extra")
    assert not isinstance(caught.value, PluginLoadError)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("demo_function", r"the function 'a_function', not a Reporter class"),
        ("demo_instance", r"an instance of Good, not a Reporter class"),
        ("demo_misnamed", r"Misnamed.name is 'something_else', but it is registered as"),
        ("demo_no_name", r"NoName.name is None"),
    ],
)
def test_a_reporter_entry_point_must_name_a_reporter_class(name: str, problem: str) -> None:
    with pytest.raises(PluginLoadError, match=problem):
        load_plugin(REPORT_TO_GROUP, name)


def test_a_search_backend_entry_point_must_name_a_backend_class() -> None:
    with pytest.raises(PluginLoadError, match=r"not a SearchBackend class: it has no is_available"):
        load_plugin(HP_SEARCH_BACKENDS_GROUP, "demo_not_a_backend")


def test_a_name_two_packages_register_differently_is_refused() -> None:
    with pytest.raises(PluginLoadError, match=r"Several installed packages register") as caught:
        load_plugin(REPORT_TO_GROUP, "demo_twice")
    assert sorted(caught.value.providers) == ["demo-reporters", "demo-reporters-copy"]
    assert "demo_reporters_copy:Twice" in str(caught.value)


def test_a_name_two_packages_register_with_the_same_target_loads() -> None:
    assert load_plugin(REPORT_TO_GROUP, "demo_same_target").__name__ == "Same"
