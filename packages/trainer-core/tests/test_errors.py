"""The missing-extra error and the lazy importer that raises it."""

from __future__ import annotations

import pytest

from trainer_core import MissingExtraError, import_optional


def test_missing_module_raises_missing_extra_with_install_command() -> None:
    with pytest.raises(MissingExtraError) as caught:
        import_optional(
            "module_that_does_not_exist_xyz",
            package="trainer-reporting",
            extra="wandb",
            feature="report_to='wandb'",
        )
    error = caught.value
    assert isinstance(error, ImportError)
    assert error.name == "module_that_does_not_exist_xyz"
    assert "pip install 'trainer-reporting[wandb]'" in str(error)
    assert "report_to='wandb'" in str(error)


def test_present_module_is_returned() -> None:
    json_module = import_optional("json", package="x", extra="y", feature="z")
    assert json_module.dumps([1]) == "[1]"


def test_broken_dependency_of_an_installed_module_is_not_disguised(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "half_installed_xyz.py").write_text("import dependency_missing_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        import_optional("half_installed_xyz", package="p", extra="e", feature="f")
    assert not isinstance(caught.value, MissingExtraError)
    assert caught.value.name == "dependency_missing_xyz"


def test_import_of_trainer_core_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, trainer_core; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_third_party_package_without_an_extra_is_named_directly() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'some-dist'$"):
        import_optional("module_missing_abc", package="some-dist", extra=None, feature="x")
