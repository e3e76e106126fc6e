"""How one dataclass field becomes argparse options, accepts dict values and becomes argv.

Values reach a dataclass three ways: as command-line text, as loose Python values read
from a dict, JSON or YAML, and back out again as command-line text. One `FieldSpec` per
field holds the single answer to "what does this field accept" so the three paths cannot
disagree. A `_Converter` handles one scalar type; a `FieldSpec` adds the shape around it
(a flag, a scalar, a list, or "a string or a list") plus the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import functools
import json
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

from trainer_args._json_args import options_of

NO_DEFAULT: Any = dataclasses.MISSING
"""Marks a field without a default (the option is required)."""

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "on", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "off", "0"})
_BOOL_WORDS = "true/false, yes/no, on/off or 1/0"


class _Converter:
    """Reads, checks and writes the values of one scalar type.

    ``from_text`` reads one command-line token, ``from_value`` accepts a loose Python value
    (from a dict, JSON or YAML) and coerces it only where no information is lost, ``exact``
    says whether a value already has this type, ``to_text`` writes a token that
    ``from_text`` reads back to an equal value. The two readers raise ``ValueError``.
    """

    description = "a value"

    def from_text(self, text: str) -> Any:
        raise NotImplementedError

    def from_value(self, value: Any) -> Any:
        raise NotImplementedError

    def exact(self, value: Any) -> bool:
        return False

    def to_text(self, value: Any) -> str:
        return str(value)

    def choices(self) -> list[Any] | None:
        return None

    def metavar(self) -> str | None:
        return None


class _Bool(_Converter):
    description = "a bool"

    def from_text(self, text: str) -> bool:
        word = text.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError(f"write {_BOOL_WORDS}")

    def from_value(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            return self.from_text(value)
        raise ValueError

    def exact(self, value: Any) -> bool:
        return isinstance(value, bool)

    def to_text(self, value: Any) -> str:
        return "true" if self.from_value(value) else "false"


class _Int(_Converter):
    description = "an int"

    def from_text(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ValueError from None

    def from_value(self, value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return self.from_text(value.strip())
        raise ValueError

    def exact(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def to_text(self, value: Any) -> str:
        return str(self.from_value(value))


class _Float(_Converter):
    description = "a float"

    def from_text(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise ValueError from None

    def from_value(self, value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return self.from_text(value.strip())
        raise ValueError

    def exact(self, value: Any) -> bool:
        return isinstance(value, float)

    def to_text(self, value: Any) -> str:
        return repr(self.from_value(value))


class _Str(_Converter):
    description = "a str"

    def from_text(self, text: str) -> str:
        return text

    def from_value(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise ValueError

    def exact(self, value: Any) -> bool:
        return isinstance(value, str)


class _Anything(_Converter):
    """For ``Any`` and ``object`` fields: text stays text, other values pass unchanged."""

    description = "any value"

    def from_text(self, text: str) -> str:
        return text

    def from_value(self, value: Any) -> Any:
        return value

    def exact(self, value: Any) -> bool:
        return True


class _Class(_Converter):
    """Any other class (``pathlib.Path``, a user type): built by calling it on the text."""

    def __init__(self, cls: type) -> None:
        self._cls = cls
        self.description = f"a {cls.__name__}"

    def from_text(self, text: str) -> Any:
        return self._cls(text)

    def from_value(self, value: Any) -> Any:
        if isinstance(value, self._cls):
            return value
        if isinstance(value, str):
            return self._cls(value)
        raise ValueError

    def exact(self, value: Any) -> bool:
        return isinstance(value, self._cls)


class _Choice(_Converter):
    """Enum and Literal fields: a fixed set of values, written as their text.

    An enum field (``color: Color``, or ``Union[Color, str]``) receives the member's
    *value* (``--color blue`` gives ``"blue"``, ``--level 2`` gives ``2``), as the
    reference's parser does: scripts compare ``args.color == "blue"``. A member given in
    a dict or set as the default stays that member; converting is left to the dataclass.
    """

    def __init__(self, values: Sequence[Any], enum_cls: type[enum.Enum] | None = None) -> None:
        self._values = list(values)
        self._enum = enum_cls
        shown = ", ".join(repr(self._text(v)) for v in self._values)
        self.description = f"one of {shown}"

    @classmethod
    def of_enum(cls, enum_cls: type[enum.Enum]) -> _Choice:
        return cls([m.value for m in enum_cls], enum_cls)

    @staticmethod
    def _text(value: Any) -> str:
        return str(value.value if isinstance(value, enum.Enum) else value)

    def _match(self, value: Any, *, by_text: bool) -> Any:
        if self._enum is not None and isinstance(value, self._enum):
            return value
        for choice in self._values:
            same = type(value) is type(choice) and value == choice
            if same or (by_text and isinstance(value, str) and value == self._text(choice)):
                return choice
        raise ValueError

    def from_text(self, text: str) -> Any:
        return self._match(text, by_text=True)

    def from_value(self, value: Any) -> Any:
        return self._match(value, by_text=True)

    def exact(self, value: Any) -> bool:
        try:
            self._match(value, by_text=False)
        except ValueError:
            return False
        return True

    def to_text(self, value: Any) -> str:
        return self._text(value)

    def choices(self) -> list[Any]:
        return list(self._values)

    def metavar(self) -> str:
        return "{" + ",".join(self._text(v) for v in self._values) + "}"


class _TextOrDict(_Converter):
    """``Union[dict, str]`` fields: a dict, or text (JSON or a path) the dataclass reads.

    Other classes in the union (``os.PathLike``, a config object) are accepted as they are
    from a dict; on the command line the field is text, which the dataclass interprets.
    """

    def __init__(self, others: tuple[type, ...] = ()) -> None:
        self._others = others
        names = "".join(f", a {cls.__name__}" for cls in others)
        self.description = f"a dict{names} or a str (JSON text or a path)"

    def from_text(self, text: str) -> str:
        return text

    def from_value(self, value: Any) -> Any:
        if isinstance(value, (str, *self._others)):
            return value
        options = options_of(value)
        if options is None:
            raise ValueError
        return options

    def exact(self, value: Any) -> bool:
        return isinstance(value, (str, *self._others)) or options_of(value) is not None

    def to_text(self, value: Any) -> str:
        options = options_of(value)
        if options is not None:
            return json.dumps(options)
        return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


class _JsonDict(_Converter):
    """Plain ``dict`` fields: a dict, written on the command line as a JSON object."""

    description = "a dict (a JSON object on the command line)"

    def from_text(self, text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error}") from error
        if not isinstance(value, dict):
            raise ValueError("the JSON is not an object")
        return value

    def from_value(self, value: Any) -> dict[str, Any]:
        if isinstance(value, Mapping):
            return dict(value)
        if isinstance(value, str):
            return self.from_text(value)
        raise ValueError

    def exact(self, value: Any) -> bool:
        return isinstance(value, Mapping)

    def to_text(self, value: Any) -> str:
        return json.dumps(dict(value))


class _Union(_Converter):
    """A union of scalar types: the first member that reads the value wins, ``str`` last."""

    def __init__(self, members: Sequence[_Converter]) -> None:
        self._members = sorted(members, key=lambda m: isinstance(m, (_Str, _Anything)))
        self.description = " or ".join(m.description for m in self._members)

    def from_text(self, text: str) -> Any:
        return self._first(lambda m: m.from_text(text))

    def from_value(self, value: Any) -> Any:
        for member in self._members:
            if member.exact(value):
                return member.from_value(value)
        return self._first(lambda m: m.from_value(value))

    def _first(self, read: Any) -> Any:
        for member in self._members:
            try:
                return read(member)
            except (TypeError, ValueError):
                continue
        raise ValueError

    def exact(self, value: Any) -> bool:
        return any(m.exact(value) for m in self._members)

    def to_text(self, value: Any) -> str:
        for member in self._members:
            if member.exact(value):
                return member.to_text(value)
        return str(value)


class _ArgType:
    """Adapts a converter to argparse's ``type=``: bad text becomes an argparse error."""

    def __init__(self, converter: _Converter) -> None:
        self.converter = converter
        self.__name__ = converter.description

    def __call__(self, text: str) -> Any:
        try:
            return self.converter.from_text(text)
        except (TypeError, ValueError) as error:
            reason = f": {error}" if str(error) else ""
            message = f"expected {self.converter.description}, got {text!r}{reason}"
            raise argparse.ArgumentTypeError(message) from error

    def __repr__(self) -> str:
        return f"<{self.converter.description}>"


class _StrOrListAction(argparse.Action):
    """``Union[List[X], str]`` options: one token stays a string, several make a list.

    So both spellings users know work: ``--fsdp "full_shard auto_wrap"`` (one string the
    dataclass splits) and ``--fsdp full_shard auto_wrap`` (a list). A field whose
    metadata sets ``nargs="?"`` (or ``"*"``) and a ``const`` also takes the option alone
    (``--fsdp``, transformers 5's spelling of ``fsdp=True``), which stores the ``const``.
    """

    def __init__(self, option_strings: list[str], dest: str, element: _Converter, **kwargs: Any):
        super().__init__(option_strings, dest, **kwargs)
        self.element = element

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = list(values)
        if not items and self.const is not None:
            setattr(namespace, self.dest, self.const)
            return
        if len(items) == 1:
            setattr(namespace, self.dest, items[0])
            return
        read = _ArgType(self.element)
        try:
            setattr(namespace, self.dest, [read(item) for item in items])
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentError(self, str(error)) from error


# --------------------------------------------------------------------------- annotations


def _split_optional(hint: Any) -> tuple[tuple[Any, ...], bool]:
    """The members of a union without ``None``, and whether ``None`` was one of them."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        members = typing.get_args(hint)
        rest = tuple(m for m in members if m is not type(None))
        return rest, len(rest) < len(members)
    return (hint,), False


def _is_list(hint: Any) -> bool:
    return hint in (list, typing.List) or typing.get_origin(hint) in (list, Sequence)  # noqa: UP006


def _is_dict(hint: Any) -> bool:
    return hint in (dict, typing.Dict) or typing.get_origin(hint) in (dict, Mapping)  # noqa: UP006


def _element(hint: Any) -> Any:
    args = typing.get_args(hint)
    return args[0] if args else str


def _is_enum(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, enum.Enum)


_SUPPORTED = (
    "bool, int, float, str, an Enum, a Literal, any class built from a string, list[X] and "
    "dict, each optionally Optional; Union[X, str] where X is an Enum or a list; unions of "
    "str, dict and classes (such as os.PathLike); unions of scalar types"
)


def _unsupported(name: str, hint: Any) -> ValueError:
    return ValueError(
        f"HfArgumentParser cannot map field {name!r} annotated {hint!r} to a command-line "
        f"option. Supported annotations: {_SUPPORTED}. Change the annotation, or give the "
        "field init=False to keep it off the command line."
    )


def _scalar(hint: Any, name: str) -> _Converter:
    simple: dict[Any, type[_Converter]] = {bool: _Bool, int: _Int, float: _Float, str: _Str}
    if hint in simple:
        return simple[hint]()
    if hint is Any or hint is object:
        return _Anything()
    if typing.get_origin(hint) is Literal:
        return _Choice(typing.get_args(hint))
    if _is_enum(hint):
        return _Choice.of_enum(hint)
    if isinstance(hint, type) and not _is_list(hint) and not _is_dict(hint):
        return _Class(hint)
    raise _unsupported(name, hint)


def _classify_single(hint: Any, name: str) -> tuple[str, _Converter]:
    if hint is bool:
        return "flag", _Bool()
    if _is_list(hint):
        return "list", _scalar(_element(hint), name)
    if _is_dict(hint):
        return "scalar", _JsonDict()
    return "scalar", _scalar(hint, name)


def _classify_union(members: tuple[Any, ...], hint: Any, name: str) -> tuple[str, _Converter]:
    others = [m for m in members if m is not str]
    has_str = len(others) < len(members)
    if has_str and len(others) == 1 and _is_list(others[0]):
        return "str_or_list", _scalar(_element(others[0]), name)
    if has_str and len(others) == 1 and _is_enum(others[0]):
        return "scalar", _Choice.of_enum(others[0])
    classes = tuple(m for m in others if not _is_dict(m) and isinstance(m, type))
    if has_str and any(_is_dict(m) for m in others) and len(classes) + 1 == len(others):
        return "scalar", _TextOrDict(classes)
    if any(_is_list(m) or _is_dict(m) for m in members):
        raise _unsupported(name, hint)
    return "scalar", _Union([_scalar(m, name) for m in members])


def classify(hint: Any, name: str) -> tuple[str, _Converter, bool]:
    """Sort a resolved annotation into a shape, a converter and whether ``None`` is allowed.

    The shape is ``"flag"`` (bool), ``"scalar"``, ``"list"`` or ``"str_or_list"``.

    Raises:
        ValueError: the annotation has no command-line form; the message lists the forms
            that have one.
    """
    members, optional = _split_optional(hint)
    if len(members) == 1:
        kind, converter = _classify_single(members[0], name)
    else:
        kind, converter = _classify_union(members, hint, name)
    return kind, converter, optional


@functools.cache
def bool_field_names(cls: type) -> frozenset[str]:
    """The ``init`` fields of the dataclass ``cls`` annotated ``bool`` or ``bool | None``:
    those a string given in Python (``greater_is_better="False"``) would otherwise pass
    by its truth, the opposite of what it says."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # a subclass's annotation only importable for checkers
        hints = {}
    names = set()
    for field in dataclasses.fields(cls):
        hint = hints.get(field.name, field.type)
        if isinstance(hint, str):  # unresolved: read the spelling
            is_bool = hint.replace(" ", "") in _BOOL_SPELLINGS
        else:
            is_bool = _split_optional(hint)[0] == (bool,)
        if field.init and is_bool:
            names.add(field.name)
    return frozenset(names)


_BOOL_SPELLINGS = frozenset(
    {"bool", "Optional[bool]", "typing.Optional[bool]", "bool|None", "None|bool"}
)


def bool_from_word(text: str) -> bool:
    """``"true"`` / ``"no"`` / ... as a bool (the words the command line accepts).

    Raises:
        ValueError: another word, naming the accepted ones.
    """
    return _Bool().from_text(text)


BOOL_WORDS = _BOOL_WORDS


# --------------------------------------------------------------------------- field specs

_LONE_PERCENT = re.compile(r"%(?![(%])")


def _default_of(field: dataclasses.Field[Any]) -> tuple[Any, bool]:
    if field.default is not dataclasses.MISSING:
        return field.default, False
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory(), True
    return NO_DEFAULT, False


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """Everything the parser knows about one ``init=True`` dataclass field.

    Attributes:
        name: the field name, also the option name (``--name``) and the dict key.
        kind: ``"flag"``, ``"scalar"``, ``"list"`` or ``"str_or_list"``.
        converter: reads and writes the field's scalar values (list elements for lists).
        optional: ``None`` is an accepted value.
        default: the option's default, ``NO_DEFAULT`` when the option is required.
        from_factory: ``default`` came from a ``default_factory`` (the parser leaves such
            values out so that each dataclass instance builds its own).
        passed_as_is: types of dict values the dataclass's constructor takes beyond the
            annotation (it checks them itself), handed over unchanged.
    """

    name: str
    kind: str
    converter: _Converter
    optional: bool
    default: Any
    from_factory: bool
    passed_as_is: tuple[type, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT

    # ----------------------------------------------------------------- argparse

    def option_strings(self, aliases: Sequence[str] = ()) -> list[str]:
        """``--name``, ``--name-with-dashes`` when the name has underscores, then aliases."""
        options = [f"--{self.name}"]
        if "_" in self.name:
            options.append(f"--{self.name.replace('_', '-')}")
        return options + [a for a in aliases if a not in options]

    def argparse_kwargs(self) -> dict[str, Any]:
        """The ``add_argument`` keywords for the field, before metadata overrides them."""
        kwargs: dict[str, Any] = {"dest": self.name}
        if self.required:
            kwargs["required"] = True
        else:
            kwargs["default"] = self.default
        if self.kind == "str_or_list":
            kwargs.update(
                nargs="+", action=functools.partial(_StrOrListAction, element=self.converter)
            )
            return kwargs
        kwargs["type"] = _ArgType(self.converter)
        if self.kind == "flag":
            kwargs.update(nargs="?", const=True)
        if self.kind == "list":
            # "*" rather than "+": an empty list (report_to's "no reporter") must have a
            # command-line spelling for arguments to round-trip.
            kwargs["nargs"] = "*"
        if self.converter.choices() is not None:
            kwargs.update(choices=self.converter.choices(), metavar=self.converter.metavar())
        return kwargs

    def add_to(self, container: Any, metadata: Mapping[str, Any]) -> None:
        """Add the field's option(s) to a parser or argument group.

        ``metadata`` keys other than ``aliases`` go to ``add_argument`` and win over the
        computed keywords. A bool field defaulting to True also gets ``--no_name``.

        Raises:
            ValueError: the metadata holds a keyword ``add_argument`` does not take.
        """
        extra = dict(metadata)
        aliases = extra.pop("aliases", ())
        aliases = [aliases] if isinstance(aliases, str) else list(aliases)
        if isinstance(extra.get("help"), str):
            extra["help"] = _LONE_PERCENT.sub("%%", extra["help"])
        if self.kind == "str_or_list" and extra.get("nargs") == "?":
            # "?" + const (transformers 5's metadata for --fsdp, which argparse also
            # accepts when transformers' own parser reads our dataclass) means "the option
            # alone stores const"; the list spelling (--fsdp full_shard auto_wrap) stays.
            extra["nargs"] = "*"
        kwargs = {**self.argparse_kwargs(), **extra}
        try:
            container.add_argument(*self.option_strings(aliases), **kwargs)
        except TypeError as error:
            raise ValueError(
                f"field {self.name!r}: its metadata keys {sorted(extra)} are not all "
                f"argparse.add_argument keywords ({error}). Keep 'help', 'aliases' and "
                "add_argument keywords in a field's metadata."
            ) from error
        if self.kind == "flag" and self.default is True:
            dashed = self.name.replace("_", "-")
            negatives = dict.fromkeys([f"--no_{self.name}", f"--no-{dashed}"])
            container.add_argument(
                *negatives, action="store_false", dest=self.name, default=True,
                help=f"Set {self.name} to False.",
            )  # fmt: skip

    # ----------------------------------------------------------------- dict values

    def coerce(self, value: Any) -> Any:
        """Check a value from a dict, JSON or YAML and coerce it where nothing is lost.

        Raises:
            ValueError: naming the field, what it accepts and the value given.
        """
        if value is None and (self.optional or self.default is None):
            return None
        if self.passed_as_is and isinstance(value, self.passed_as_is):
            return value
        try:
            return self._coerce(value)
        except (TypeError, ValueError) as error:
            raise self._mismatch(value, error) from error

    def _coerce(self, value: Any) -> Any:
        if self.kind in ("flag", "scalar"):
            return self.converter.from_value(value)
        if self.kind == "str_or_list" and isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)):
            return [self._element(i, v) for i, v in enumerate(value)]
        if isinstance(value, (Mapping, set)) or value is None:
            raise ValueError
        return [self.converter.from_value(value)]

    def _element(self, index: int, value: Any) -> Any:
        try:
            return self.converter.from_value(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"item {index} is {value!r}") from error

    def describe(self) -> str:
        """What the field accepts, in words, for error messages."""
        none = " or None" if self.optional else ""
        if self.kind == "list":
            return f"a list, each item {self.converter.description}{none}"
        if self.kind == "str_or_list":
            return f"a str or a list, each item {self.converter.description}{none}"
        return f"{self.converter.description}{none}"

    def _mismatch(self, value: Any, error: BaseException) -> ValueError:
        detail = f": {error}" if str(error) else ""
        return ValueError(
            f"key {self.name!r} expects {self.describe()}, got {value!r} "
            f"(a {type(value).__name__}){detail}. Fix the value for {self.name!r}."
        )

    # ----------------------------------------------------------------- command line

    def to_tokens(self, value: Any) -> list[str]:
        """Command-line tokens that parse back to ``value``; none when it is the default.

        Raises:
            ValueError: the value has no command-line spelling (``None`` for a field whose
                default is not ``None``).
        """
        if not self.required and _equal(value, self.default):
            return []
        if value is None:
            raise self._unwritable(value, "None has no command-line spelling")
        try:
            return self._tokens(value)
        except (TypeError, ValueError) as error:  # name the field the value belongs to
            raise self._unwritable(value, str(error) or type(error).__name__) from error

    def _tokens(self, value: Any) -> list[str]:
        if self.kind in ("flag", "scalar"):
            return [f"--{self.name}={self.converter.to_text(value)}"]
        if isinstance(value, str) and self.kind == "str_or_list":
            return [f"--{self.name}={value}"]
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if items:
            return [f"--{self.name}", *(self.converter.to_text(v) for v in items)]
        if self.kind == "str_or_list":
            return [f"--{self.name}="]
        return [f"--{self.name}"]

    def _unwritable(self, value: Any, why: str) -> ValueError:
        return ValueError(
            f"field {self.name!r} holds {value!r}, which cannot be written on a command "
            f"line: {why}. Its default is {self.default!r}; leave the field at its "
            "default or pass it through parse_dict instead."
        )


def _equal(value: Any, default: Any) -> bool:
    """``value == default``, except that a bool never equals a non-bool (1 is not True)."""
    if value is default:
        return True
    if isinstance(value, bool) != isinstance(default, bool):
        return False
    try:
        return bool(value == default)
    except Exception:  # an __eq__ that cannot answer means "not known to be equal"
        return False


def build_field_spec(
    field: dataclasses.Field[Any], hint: Any, passed_as_is: tuple[type, ...] = ()
) -> FieldSpec:
    """Build the spec of one field from its resolved annotation.

    A bool field without a default defaults to False (an absent flag means False), as
    in the reference parser; every other field without a default is required.
    ``passed_as_is``: see :class:`FieldSpec`.
    """
    kind, converter, optional = classify(hint, field.name)
    default, from_factory = _default_of(field)
    if kind == "flag" and default is NO_DEFAULT:
        default = False
    return FieldSpec(field.name, kind, converter, optional, default, from_factory, passed_as_is)
