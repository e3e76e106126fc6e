"""HfArgumentParser from dicts, JSON and YAML files, and back to a command line."""

from __future__ import annotations

import dataclasses
import enum
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Literal, Optional, Union  # noqa: UP035

import pytest

from trainer_args import HfArgumentParser


class Mode(str, enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclasses.dataclass
class Config:
    name: str
    lr: float = 1e-3
    steps: int = 10
    shuffle: bool = True
    seed: Optional[int] = None  # noqa: UP045
    mode: Mode = Mode.FAST
    loose_mode: Union[Mode, str] = "fast"  # noqa: UP007
    kind: Literal["a", "b"] = "a"
    tags: List[str] = dataclasses.field(default_factory=list)  # noqa: UP006
    sizes: Optional[List[int]] = None  # noqa: UP006, UP045
    options: Union[List[str], str, None] = ""  # noqa: UP006, UP007
    extra: Union[dict, str, None] = None  # noqa: UP007
    table: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Other:
    depth: int = 2


PARSER = HfArgumentParser([Config, Other])


def one(values: dict[str, Any]) -> Config:
    config, _ = PARSER.parse_dict(values)
    return config


# ---------------------------------------------------------------------- parse_dict


def test_dict_values_build_each_dataclass_in_order() -> None:
    config, other = PARSER.parse_dict({"name": "n", "lr": 0.5, "depth": 7})
    assert config == Config(name="n", lr=0.5)
    assert other == Other(depth=7)


def test_unknown_key_is_named_with_the_closest_field() -> None:
    with pytest.raises(ValueError, match="'lrr'") as info:
        PARSER.parse_dict({"name": "n", "lrr": 1.0})
    assert "did you mean 'lr'" in str(info.value)
    with pytest.raises(ValueError, match="'zzzzzz'"):
        PARSER.parse_dict({"name": "n", "zzzzzz": 1})


def test_unknown_keys_are_ignored_when_allowed() -> None:
    config, _ = PARSER.parse_dict({"name": "n", "nope": 1}, allow_extra_keys=True)
    assert config == Config(name="n")


def test_missing_required_field_is_named() -> None:
    with pytest.raises(ValueError, match=r"Config needs a value for \['name'\]"):
        PARSER.parse_dict({"lr": 0.1})


def test_non_mapping_is_rejected() -> None:
    with pytest.raises(TypeError, match="mapping"):
        PARSER.parse_dict([("name", "n")])  # type: ignore[arg-type]  # the error under test


@pytest.mark.parametrize(
    ("values", "field", "expected"),
    [
        ({"lr": 1}, "lr", 1.0),
        ({"lr": "1e-4"}, "lr", 1e-4),
        ({"lr": " 2.5 "}, "lr", 2.5),
        ({"steps": 3.0}, "steps", 3),
        ({"steps": "12"}, "steps", 12),
        ({"shuffle": "false"}, "shuffle", False),
        ({"shuffle": "True"}, "shuffle", True),
        ({"shuffle": 0}, "shuffle", False),
        ({"seed": None}, "seed", None),
        ({"seed": 3}, "seed", 3),
        ({"name": 2024}, "name", "2024"),
        ({"tags": "one"}, "tags", ["one"]),
        ({"tags": ("a", "b")}, "tags", ["a", "b"]),
        ({"sizes": [1, 2.0, "3"]}, "sizes", [1, 2, 3]),
        ({"sizes": 4}, "sizes", [4]),
        ({"options": "a b"}, "options", "a b"),
        ({"options": ["a", "b"]}, "options", ["a", "b"]),
        ({"extra": {"k": 1}}, "extra", {"k": 1}),
        ({"extra": "cfg.json"}, "extra", "cfg.json"),
        ({"table": '{"k": 2}'}, "table", {"k": 2}),
        ({"kind": "b"}, "kind", "b"),
    ],
)
def test_values_are_coerced_where_nothing_is_lost(
    values: dict[str, Any], field: str, expected: Any
) -> None:
    value = getattr(one({"name": "n", **values}), field)
    assert value == expected
    assert type(value) is type(expected)


def test_enum_fields_keep_what_the_dict_gives_a_value_or_a_member() -> None:
    # As the reference's parse_dict, which builds the dataclass from the dict as it is.
    config = one({"name": "n", "mode": "slow", "loose_mode": Mode.SLOW})
    assert config.mode == "slow" and type(config.mode) is str
    assert config.loose_mode is Mode.SLOW
    assert one({"name": "n", "mode": Mode.SLOW}).mode is Mode.SLOW
    assert one({"name": "n", "loose_mode": "slow"}).loose_mode == "slow"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("lr", "abc", "a float"),
        ("lr", True, "a float"),
        ("lr", [1.0], "a float"),
        ("steps", 1.5, "an int"),
        ("steps", "1.5", "an int"),
        ("steps", True, "an int"),
        ("shuffle", "maybe", "a bool"),
        ("shuffle", 2, "a bool"),
        ("name", ["a"], "a str"),
        ("name", 1.5, "a str"),
        ("name", None, "a str"),
        ("mode", "medium", "one of 'fast', 'slow'"),
        ("loose_mode", "medium", "one of 'fast', 'slow'"),
        ("kind", "c", "one of 'a', 'b'"),
        ("tags", {"a": 1}, "a list, each item a str"),
        ("sizes", [1, "x"], "each item an int or None, got [1, 'x'] (a list): item 1 is 'x'"),
        ("extra", [1], "a dict or a str"),
        ("table", "[1]", "JSON object"),
    ],
)
def test_wrong_types_name_the_key_the_expected_type_and_the_value(
    key: str, value: Any, expected: str
) -> None:
    with pytest.raises(ValueError) as info:
        one({"name": "n", key: value} if key != "name" else {"name": value})
    message = str(info.value)
    assert f"key {key!r}" in message
    assert expected in message
    assert repr(value) in message


# ---------------------------------------------------------------------- files


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"name": "n", "lr": 2, "tags": ["x"], "depth": 3}))
    config, other = PARSER.parse_json_file(path)
    assert config == Config(name="n", lr=2.0, tags=["x"])
    assert other == Other(depth=3)
    (config_only,) = HfArgumentParser(Config).parse_json_file(str(path), allow_extra_keys=True)
    assert config_only == config


def test_json_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON"):
        PARSER.parse_json_file(bad)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError, match="mapping of field names"):
        PARSER.parse_json_file(listed)
    extra = tmp_path / "extra.json"
    extra.write_text('{"name": "n", "nmae": "x"}')
    with pytest.raises(ValueError, match="did you mean 'name'"):
        PARSER.parse_json_file(extra)


def test_yaml_file_reads_yaml_scientific_notation_as_a_float(tmp_path: Path) -> None:
    path = tmp_path / "args.yaml"
    path.write_text("name: n\nlr: 1e-4\nshuffle: no\nsizes: [1, 2]\nextra:\n  k: v\n")
    config, other = PARSER.parse_yaml_file(path)
    assert config == Config(name="n", lr=1e-4, shuffle=False, sizes=[1, 2], extra={"k": "v"})
    assert other == Other()


def test_yaml_file_errors_and_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert HfArgumentParser(Other).parse_yaml_file(empty) == (Other(),)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        PARSER.parse_yaml_file(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(ValueError, match="mapping of field names"):
        PARSER.parse_yaml_file(scalar)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("name: n\nsteps: 1.5\n")
    with pytest.raises(ValueError, match="key 'steps' expects an int"):
        PARSER.parse_yaml_file(wrong)


# ---------------------------------------------------------------------- to_command_line


def test_command_line_round_trip_of_an_instance() -> None:
    config = Config(
        name="-starts with a dash",
        lr=-1e-8,
        steps=-3,
        shuffle=False,
        seed=7,
        mode=Mode.SLOW,
        loose_mode="slow",
        kind="b",
        tags=["x", "y z"],
        sizes=[3],
        options=["a", "b"],
        extra={"k": [1, 2]},
        table={"t": 1},
    )
    parser = HfArgumentParser(Config)
    argv = parser.to_command_line(config)
    assert "--lr=-1e-08" in argv
    (back,) = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    assert back == dataclasses.replace(config, extra='{"k": [1, 2]}')


def test_command_line_leaves_defaults_out() -> None:
    assert HfArgumentParser(Config).to_command_line(Config(name="n")) == ["--name=n"]


def test_command_line_from_a_mapping() -> None:
    argv = PARSER.to_command_line({"name": "n", "mode": "slow", "shuffle": False, "depth": 5.0})
    assert argv == ["--name=n", "--shuffle=false", "--mode=slow", "--depth=5"]
    config, other = PARSER.parse_args_into_dataclasses(argv, look_for_args_file=False)
    assert (config, other) == (Config(name="n", mode=Mode.SLOW, shuffle=False), Other(depth=5))
    with pytest.raises(ValueError, match="did you mean 'depth'"):
        PARSER.to_command_line({"name": "n", "dpth": 5})


def test_command_line_refuses_values_it_cannot_spell() -> None:
    parser = HfArgumentParser(Config)
    with pytest.raises(ValueError, match=r"'lr'.*None"):
        parser.to_command_line(Config(name="n", lr=None))  # type: ignore[arg-type]  # under test
    empty = parser.to_command_line(Config(name="n", sizes=[]))
    assert "--sizes" in empty
    assert parser.parse_args_into_dataclasses(empty, look_for_args_file=False)[0].sizes == []
    assert parser.to_command_line(Config(name="n", options=[])) == ["--name=n", "--options="]
    with pytest.raises(TypeError, match="instance of Config"):
        parser.to_command_line(Other())


def test_yaml_and_difflib_load_only_when_needed() -> None:
    probe = (
        "import sys, trainer_args\n"
        "parser = trainer_args.HfArgumentParser(trainer_args.TrainingArguments)\n"
        "parser.parse_args_into_dataclasses(['--output_dir', 'o'], look_for_args_file=False)\n"
        "print(sorted(m for m in ('yaml', 'difflib', 'torch') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
