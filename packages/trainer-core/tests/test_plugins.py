"""The plugin loader, exercised through real entry points of a throwaway distribution."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from trainer_core import (
    HP_SEARCH_BACKENDS_GROUP,
    REPORT_TO_GROUP,
    UnknownPluginError,
    available_plugins,
    load_plugin,
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


def test_group_names_are_the_documented_ones() -> None:
    assert REPORT_TO_GROUP == "trainer.report_to"
    assert HP_SEARCH_BACKENDS_GROUP == "trainer.hp_search_backends"
