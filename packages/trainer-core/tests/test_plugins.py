"""The plugin loader, exercised through real entry points of a throwaway distribution."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from trainer_core import (
    HP_SEARCH_BACKENDS_GROUP,
    REPORT_TO_GROUP,
    PluginHookError,
    UnknownPluginError,
    available_plugins,
    installed_plugins,
    load_plugin,
    run_hooks,
)

GROUP = "trainer.test_plugins"


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install a distribution ``demo-plugins`` with two entry points on ``sys.path``.

    One entry point imports fine, the other points at a module that raises on import: the
    loader must never touch it unless it is the one requested.
    """
    (tmp_path / "demo_plugin_ok.py").write_text("VALUE = 'loaded'\n")
    (tmp_path / "demo_plugin_broken.py").write_text("raise RuntimeError('imported!')\n")
    dist_info = tmp_path / "demo_plugins-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugins\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""\
            [{GROUP}]
            good = demo_plugin_ok:VALUE
            broken = demo_plugin_broken:VALUE
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in ("demo_plugin_ok", "demo_plugin_broken"):
        sys.modules.pop(module, None)


def test_loads_only_the_requested_plugin(installed_plugin: Path) -> None:
    assert load_plugin(GROUP, "good") == "loaded"
    assert "demo_plugin_broken" not in sys.modules


def test_available_plugins_names_the_providing_distribution(installed_plugin: Path) -> None:
    assert available_plugins(GROUP) == {"good": "demo-plugins", "broken": "demo-plugins"}
    assert "demo_plugin_ok" not in sys.modules


def test_unknown_name_lists_available_plugins_and_providers(installed_plugin: Path) -> None:
    with pytest.raises(UnknownPluginError) as caught:
        load_plugin(GROUP, "nope")
    message = str(caught.value)
    assert "'nope'" in message
    assert "'good' (from demo-plugins)" in message
    assert "'broken' (from demo-plugins)" in message


def test_known_but_missing_name_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "trainer_core._plugins.KNOWN_PROVIDERS",
        {GROUP: {"fancy": "trainer-fancy[extra]"}},
    )
    with pytest.raises(UnknownPluginError, match=r"pip install 'trainer-fancy\[extra\]'"):
        load_plugin(GROUP, "fancy")


def test_unknown_plugin_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="No plugin is installed"):
        load_plugin("trainer.group_nobody_uses", "x")


@pytest.fixture
def plugins_with_extras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution whose plugins declare extras: one extra's requirement is installed
    (pytest, spelled with another case and separator), one's is not, one has both."""
    dist_info = tmp_path / "demo_extras-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        textwrap.dedent(
            """\
            Metadata-Version: 2.1
            Name: demo-extras
            Version: 1.0
            Provides-Extra: present
            Provides-Extra: absent
            Requires-Dist: PyTest>=7; extra == "present"
            Requires-Dist: no-such-package-for-trainer-tests>=1.0; extra == 'absent'
            Requires-Dist: pytest; python_version >= "3.8" and extra == "absent"
            """
        )
    )
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""\
            [{GROUP}]
            plain = demo_plugin_ok:VALUE
            ready = demo_plugin_ok:VALUE [present]
            missing = demo_plugin_ok:VALUE [absent]
            both = demo_plugin_ok:VALUE [present, absent]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_installed_plugins_skips_those_whose_extras_are_missing(plugins_with_extras: Path) -> None:
    assert set(available_plugins(GROUP)) == {"plain", "ready", "missing", "both"}
    assert installed_plugins(GROUP) == {"plain": "demo-extras", "ready": "demo-extras"}
    assert "demo_plugin_ok" not in sys.modules


def test_group_names_are_the_documented_ones() -> None:
    assert REPORT_TO_GROUP == "trainer.report_to"
    assert HP_SEARCH_BACKENDS_GROUP == "trainer.hp_search_backends"


# ------------------------------------------------------------------ hooks
HOOK_GROUP = "trainer.test_hooks"


@pytest.fixture
def installed_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution ``demo-hooks`` whose hooks record their calls in ``CALLS``."""
    (tmp_path / "demo_hooks.py").write_text(
        textwrap.dedent(
            """\
            CALLS = []

            def first(*args, **kwargs):
                CALLS.append(("first", args, kwargs))
                return "one"

            def second(*args, **kwargs):
                CALLS.append(("second", args, kwargs))
            """
        )
    )
    _install(tmp_path, "a_first = demo_hooks:first\nb_second = demo_hooks:second\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("demo_hooks", None)


def _install(folder: Path, entry_points: str) -> None:
    dist_info = folder / "demo_hooks-1.0.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-hooks\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[{HOOK_GROUP}]\n{entry_points}")


def test_run_hooks_calls_every_hook_in_name_order(installed_hooks: Path) -> None:
    results = run_hooks(HOOK_GROUP, "args", flag=True)
    assert results == {"a_first": "one", "b_second": None}
    calls = sys.modules["demo_hooks"].CALLS
    assert calls == [("first", ("args",), {"flag": True}), ("second", ("args",), {"flag": True})]


def test_run_hooks_without_hooks_does_nothing() -> None:
    assert run_hooks("trainer.group_nobody_uses") == {}


def test_a_hook_whose_module_is_gone_is_skipped(
    installed_hooks: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _install(installed_hooks, "a_first = demo_hooks:first\ngone = demo_hooks_removed:hook\n")
    with caplog.at_level("WARNING", logger="trainer_core._plugins"):
        assert run_hooks(HOOK_GROUP) == {"a_first": "one"}
    assert "'gone'" in caplog.text and "demo_hooks_removed" in caplog.text


def test_a_hook_that_cannot_load_names_its_distribution(installed_hooks: Path) -> None:
    (installed_hooks / "demo_hooks_broken.py").write_text("import demo_dependency_missing\n")
    _install(installed_hooks, "broken = demo_hooks_broken:hook\nmisnamed = demo_hooks:absent\n")
    with pytest.raises(
        PluginHookError, match=r"'broken' \(demo_hooks_broken:hook, from demo-hooks"
    ):
        run_hooks(HOOK_GROUP)
    sys.modules.pop("demo_hooks_broken", None)
    _install(installed_hooks, "misnamed = demo_hooks:absent\n")
    with pytest.raises(PluginHookError, match=r"'misnamed'.*AttributeError"):
        run_hooks(HOOK_GROUP)


def test_an_error_raised_by_a_hook_propagates_unchanged(installed_hooks: Path) -> None:
    (installed_hooks / "demo_hooks_refusing.py").write_text(
        "def hook(value):\n    raise ValueError(f'bad value {value}')\n"
    )
    _install(installed_hooks, "refusing = demo_hooks_refusing:hook\n")
    with pytest.raises(ValueError, match="bad value 3") as caught:
        run_hooks(HOOK_GROUP, 3)
    if sys.version_info >= (3, 11):
        assert "hook 'refusing' of demo-hooks" in caught.value.__notes__[0]
    sys.modules.pop("demo_hooks_refusing", None)
