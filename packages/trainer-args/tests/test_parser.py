"""HfArgumentParser on the command line: options built from dataclass fields, args files."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union  # noqa: UP035

import pytest

from trainer_args import HfArgumentParser


class Color(str, enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Basic:
    foo: int
    bar: float = 0.5
    baz: str = "toto"
    flag: bool = False


@dataclasses.dataclass
class Flags:
    off_by_default: bool = False
    on_by_default: bool = True
    maybe: Optional[bool] = None  # noqa: UP045
    modern: bool | None = True


@dataclasses.dataclass
class Choices:
    color: Color = Color.RED
    loose_color: Union[Color, str] = "green"  # noqa: UP007
    level: Level = Level.LOW
    mode: Literal["fast", "slow", 3] = "fast"


@dataclasses.dataclass
class Lists:
    ints: List[int] = dataclasses.field(default_factory=lambda: [1, 2])  # noqa: UP006
    names: Optional[List[str]] = None  # noqa: UP006, UP045
    modern: list[float] | None = None
    colors: List[Color] = dataclasses.field(default_factory=list)  # noqa: UP006
    required_list: list[str] = dataclasses.field(default_factory=lambda: ["x"])


@dataclasses.dataclass
class Loose:
    options: Union[List[str], str, None] = ""  # noqa: UP006, UP007
    config: Union[dict, str, None] = None  # noqa: UP007
    table: Dict[str, int] = dataclasses.field(default_factory=dict)  # noqa: UP006
    number: Union[int, str] = 0  # noqa: UP007
    where: Path = Path("out")
    anything: Any = None
    shades: Union[List[Color], str, None] = None  # noqa: UP006, UP007


@dataclasses.dataclass
class WithMetadata:
    learning_rate: float = dataclasses.field(
        default=1e-3, metadata={"help": "Step size, 10% of nothing.", "aliases": ["--lr"]}
    )
    mode: str = dataclasses.field(default="a", metadata={"choices": ["a", "b"]})
    secret: str = dataclasses.field(default="s", init=False)


@dataclasses.dataclass
class Grouped:
    _argument_group_name = "Model options"
    depth: int = 2


def parse(dtype: Any, argv: list[str]) -> Any:
    (obj,) = HfArgumentParser(dtype).parse_args_into_dataclasses(argv, look_for_args_file=False)
    return obj


# ---------------------------------------------------------------------- basics


def test_fields_become_options_with_their_types_and_defaults() -> None:
    assert parse(Basic, ["--foo", "3"]) == Basic(foo=3)
    assert parse(Basic, ["--foo=3", "--bar", "2.5", "--baz", "x"]) == Basic(3, 2.5, "x")


def test_field_without_a_default_is_a_required_option() -> None:
    with pytest.raises(SystemExit):
        HfArgumentParser(Basic, exit_on_error=False).parse_args([])
    action = next(a for a in HfArgumentParser(Basic)._actions if a.dest == "foo")
    assert action.required


def test_bad_text_for_a_typed_option_is_an_argparse_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse(Basic, ["--foo", "1.5"])
    assert "--foo" in capsys.readouterr().err


def test_underscored_names_also_accept_dashes() -> None:
    obj = parse(Flags, ["--off-by-default", "--no-on-by-default"])
    assert obj == Flags(off_by_default=True, on_by_default=False)


def test_accepts_a_list_of_dataclasses_and_returns_them_in_order() -> None:
    parser = HfArgumentParser([Basic, Grouped])
    basic, grouped = parser.parse_args_into_dataclasses(["--foo", "1", "--depth", "4"])
    assert (basic, grouped) == (Basic(foo=1), Grouped(depth=4))


def test_rejects_what_is_not_a_dataclass_type() -> None:
    with pytest.raises(TypeError, match="dataclass types"):
        HfArgumentParser(Basic(foo=1))
    with pytest.raises(TypeError, match="dataclass types"):
        HfArgumentParser([Basic, int])


# ---------------------------------------------------------------------- bools


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], False),
        (["--off_by_default"], True),
        (["--off_by_default", "true"], True),
        (["--off_by_default", "False"], False),
        (["--off_by_default", "1"], True),
        (["--off_by_default", "no"], False),
        (["--off_by_default", "YES"], True),
        (["--off_by_default=0"], False),
    ],
)
def test_bool_option_takes_an_optional_value(argv: list[str], expected: bool) -> None:
    assert parse(Flags, argv).off_by_default is expected


def test_bool_defaulting_to_true_gets_a_negative_option() -> None:
    assert parse(Flags, []).on_by_default is True
    assert parse(Flags, ["--no_on_by_default"]).on_by_default is False
    assert parse(Flags, ["--on_by_default", "false"]).on_by_default is False
    assert parse(Flags, ["--no_modern"]).modern is False
    options = {o for a in HfArgumentParser(Flags)._actions for o in a.option_strings}
    assert "--no_off_by_default" not in options
    assert "--no_maybe" not in options


def test_optional_bool_keeps_none_until_given() -> None:
    assert parse(Flags, []).maybe is None
    assert parse(Flags, ["--maybe"]).maybe is True
    assert parse(Flags, ["--maybe", "n"]).maybe is False


def test_unreadable_bool_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(Flags, ["--maybe", "perhaps"])
    assert "perhaps" in capsys.readouterr().err


def test_bool_without_default_means_false_when_absent() -> None:
    @dataclasses.dataclass
    class NoDefault:
        switch: bool

    assert parse(NoDefault, []) == NoDefault(switch=False)
    assert parse(NoDefault, ["--switch"]) == NoDefault(switch=True)


# ---------------------------------------------------------------------- choices


def test_enum_field_offers_the_enum_values_and_receives_the_value() -> None:
    # As the reference's parser does: scripts compare ``args.color == "green"``.
    obj = parse(Choices, ["--color", "green", "--level", "2"])
    assert obj.color == "green" and type(obj.color) is str
    assert obj.level == 2 and type(obj.level) is int
    action = next(a for a in HfArgumentParser(Choices)._actions if a.dest == "color")
    assert action.metavar == "{red,green}"


def test_enum_or_str_field_receives_the_value_as_a_string() -> None:
    obj = parse(Choices, ["--loose_color", "red"])
    assert obj.loose_color == "red"
    assert type(obj.loose_color) is str


def test_literal_field_receives_the_literal_with_its_type() -> None:
    assert parse(Choices, ["--mode", "slow"]).mode == "slow"
    assert parse(Choices, ["--mode", "3"]).mode == 3


@pytest.mark.parametrize("argv", [["--color", "blue"], ["--mode", "4"], ["--loose_color", "x"]])
def test_value_outside_the_choices_is_rejected(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(Choices, argv)
    assert "expected one of" in capsys.readouterr().err


# ---------------------------------------------------------------------- lists and dicts


def test_list_fields_take_one_or_more_values() -> None:
    obj = parse(Lists, ["--ints", "5", "6", "7", "--names", "a", "--modern", "0.5", "-1"])
    assert obj.ints == [5, 6, 7]
    assert obj.names == ["a"]
    assert obj.modern == [0.5, -1.0]


def test_list_of_enum_converts_each_item() -> None:
    assert parse(Lists, ["--colors", "red", "green"]).colors == [Color.RED, Color.GREEN]


def test_list_defaults_come_from_a_fresh_default_factory_call() -> None:
    parser = HfArgumentParser(Lists)
    (first,) = parser.parse_args_into_dataclasses([])
    (second,) = parser.parse_args_into_dataclasses([])
    assert first.ints == [1, 2]
    first.ints.append(3)
    assert second.ints == [1, 2]


def test_list_option_without_values_is_an_empty_list() -> None:
    assert parse(Lists, ["--ints"]).ints == []


def test_string_or_list_field_one_token_is_a_string_several_a_list() -> None:
    assert parse(Loose, ["--options", "full_shard auto_wrap"]).options == "full_shard auto_wrap"
    assert parse(Loose, ["--options", "full_shard", "auto_wrap"]).options == [
        "full_shard",
        "auto_wrap",
    ]


def test_string_or_list_field_checks_each_item_of_a_list(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse(Loose, ["--shades", "red", "green"]).shades == [Color.RED, Color.GREEN]
    assert parse(Loose, ["--shades", "red green"]).shades == "red green"
    with pytest.raises(SystemExit):
        parse(Loose, ["--shades", "red", "blue"])
    assert "expected one of 'red', 'green', got 'blue'" in capsys.readouterr().err


def test_dict_or_string_field_stays_text() -> None:
    assert parse(Loose, ["--config", '{"a": 1}']).config == '{"a": 1}'
    assert parse(Loose, ["--config", "ds.json"]).config == "ds.json"


def test_union_of_text_dict_and_classes_stays_text() -> None:
    @dataclasses.dataclass
    class Generation:
        config: Union[str, os.PathLike, dict, None] = None  # noqa: UP007

    assert parse(Generation, ["--config", "model_dir"]) == Generation(config="model_dir")
    parser = HfArgumentParser(Generation)
    assert parser.parse_dict({"config": Path("p")}) == (Generation(config=Path("p")),)
    assert parser.parse_dict({"config": {"k": 1}}) == (Generation(config={"k": 1}),)
    assert parser.to_command_line(Generation(config=Path("p"))) == ["--config=p"]
    with pytest.raises(ValueError, match="key 'config' expects a dict, a PathLike or a str"):
        parser.parse_dict({"config": 3})


def test_plain_dict_field_reads_a_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse(Loose, ["--table", '{"a": 1}']).table == {"a": 1}
    with pytest.raises(SystemExit):
        parse(Loose, ["--table", "[1, 2]"])
    assert "JSON object" in capsys.readouterr().err


def test_scalar_unions_and_classes() -> None:
    assert parse(Loose, ["--number", "12"]).number == 12
    assert parse(Loose, ["--number", "twelve"]).number == "twelve"
    assert parse(Loose, ["--where", "a/b"]).where == Path("a/b")
    assert parse(Loose, ["--anything", "x"]).anything == "x"


def test_unsupported_annotation_names_the_field() -> None:
    @dataclasses.dataclass
    class Bad:
        pair: Union[List[int], Dict[str, int]] = dataclasses.field(  # noqa: UP006, UP007
            default_factory=list
        )

    with pytest.raises(ValueError, match="'pair'"):
        HfArgumentParser(Bad)


def test_unresolvable_annotation_says_where_types_must_live() -> None:
    @dataclasses.dataclass
    class Local:
        x: NotDefinedAnywhere = None  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(TypeError, match="top level"):
        HfArgumentParser(Local)


# ---------------------------------------------------------------------- metadata


def test_metadata_gives_help_aliases_and_add_argument_keywords(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse(WithMetadata, ["--lr", "0.1"]).learning_rate == 0.1
    with pytest.raises(SystemExit):
        parse(WithMetadata, ["--mode", "c"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        HfArgumentParser(WithMetadata).parse_args(["--help"])
    out = capsys.readouterr().out
    assert "Step size, 10% of nothing. (default: 0.001)" in out
    assert "--secret" not in out


def test_metadata_with_a_keyword_argparse_does_not_take_is_reported() -> None:
    @dataclasses.dataclass
    class Odd:
        x: int = dataclasses.field(default=0, metadata={"unit": "steps"})

    with pytest.raises(ValueError, match=r"'x'.*metadata"):
        HfArgumentParser(Odd)


def test_argument_group_name_groups_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        HfArgumentParser([Basic, Grouped]).parse_args(["--help"])
    assert "Model options:" in capsys.readouterr().out


def test_default_formatter_shows_defaults_and_can_be_replaced() -> None:
    parser = HfArgumentParser(Basic, formatter_class=argparse.HelpFormatter, prog="demo")
    assert parser.formatter_class is argparse.HelpFormatter
    assert parser.prog == "demo"
    assert HfArgumentParser(Basic).formatter_class is argparse.ArgumentDefaultsHelpFormatter


# ---------------------------------------------------------------------- remaining strings


def test_unused_arguments_raise_a_value_error_listing_them() -> None:
    parser = HfArgumentParser(Basic)
    with pytest.raises(ValueError, match=r"\['--unknown', 'x'\]"):
        parser.parse_args_into_dataclasses(["--foo", "1", "--unknown", "x"])


def test_unused_arguments_come_back_when_asked() -> None:
    parser = HfArgumentParser(Basic)
    obj, rest = parser.parse_args_into_dataclasses(
        ["--foo", "1", "--other"], return_remaining_strings=True
    )
    assert obj == Basic(foo=1)
    assert rest == ["--other"]


def test_options_added_by_hand_come_back_in_a_namespace() -> None:
    parser = HfArgumentParser(Basic)
    parser.add_argument("--extra", type=int, default=7)
    obj, namespace = parser.parse_args_into_dataclasses(["--foo", "1"])
    assert obj == Basic(foo=1)
    assert namespace == argparse.Namespace(extra=7)


def test_args_default_to_sys_argv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "train.py"), "--foo", "9"])
    (obj,) = HfArgumentParser(Basic).parse_args_into_dataclasses()
    assert obj == Basic(foo=9)


# ---------------------------------------------------------------------- args files


def test_script_args_file_is_read_and_the_command_line_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "train.args").write_text("--foo 1\n--bar 2.0  # a comment\n--baz 'a b'\n")
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "train.py"), "--foo", "5"])
    (obj,) = HfArgumentParser(Basic).parse_args_into_dataclasses()
    assert obj == Basic(foo=5, bar=2.0, baz="a b")
    (ignored,) = HfArgumentParser(Basic).parse_args_into_dataclasses(
        ["--foo", "3"], look_for_args_file=False
    )
    assert ignored == Basic(foo=3)


def test_args_filename_replaces_the_script_args_file(tmp_path: Path) -> None:
    path = tmp_path / "my.args"
    path.write_text("--foo 4 --flag")
    (obj,) = HfArgumentParser(Basic).parse_args_into_dataclasses([], args_filename=path)
    assert obj == Basic(foo=4, flag=True)
    with pytest.raises(FileNotFoundError, match=r"missing\.args"):
        HfArgumentParser(Basic).parse_args_into_dataclasses(
            [], args_filename=tmp_path / "missing.args"
        )


def test_args_file_flag_names_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.args").write_text("--foo 1 --bar 1.0")
    (tmp_path / "b.args").write_text("--bar 2.0 --baz from_b")
    argv = ["--args_file", str(tmp_path / "a.args"), "--baz", "cli"]
    argv += ["--args_file", str(tmp_path / "b.args")]
    (obj,) = HfArgumentParser(Basic).parse_args_into_dataclasses(
        argv, look_for_args_file=False, args_file_flag="--args_file"
    )
    assert obj == Basic(foo=1, bar=2.0, baz="cli")
    with pytest.raises(FileNotFoundError, match="--args_file"):
        HfArgumentParser(Basic).parse_args_into_dataclasses(
            ["--args_file", "nope.args"], args_file_flag="--args_file"
        )
