"""`HfArgumentParser`: dataclasses in, argparse options out, dataclass instances back.

Scripts written for the reference API declare their settings as dataclasses and get a
command line, args files, and dict / JSON / YAML loading from this one class. How each
field maps to an option lives in `_field_types`; this module handles the dataclasses as
a whole: building the options, gathering arguments from files, and building instances.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trainer_args._field_types import FieldSpec, build_field_spec

__all__ = ["HfArgumentParser"]

_ABSENT = object()

DataClassType = Any
"""A dataclass type; spelled ``Any`` because typing has no "dataclass type" form."""


def _as_dataclass_types(dataclass_types: Any) -> list[type]:
    single = isinstance(dataclass_types, type) or not isinstance(dataclass_types, Iterable)
    types_ = [dataclass_types] if single else list(dataclass_types)
    for dtype in types_:
        if not (isinstance(dtype, type) and dataclasses.is_dataclass(dtype)):
            raise TypeError(
                f"HfArgumentParser takes dataclass types, got {dtype!r}. Pass a class "
                "decorated with @dataclasses.dataclass (the class, not an instance), or a "
                "list of them."
            )
    return types_


def _resolve_hints(dtype: type) -> dict[str, Any]:
    """Evaluate the field annotations, which are strings under postponed evaluation."""
    try:
        return typing.get_type_hints(dtype)
    except Exception as error:  # NameError, TypeError, SyntaxError from user annotations
        raise TypeError(
            f"Could not resolve the type annotations of {dtype.__qualname__}: {error}. "
            "typing.get_type_hints evaluates them in the module that defines the class; "
            "define every type they name at that module's top level."
        ) from error


def _read_args_file(path: Path) -> list[str]:
    """Split an args file like a shell would: quotes group words, ``#`` starts a comment."""
    return shlex.split(path.read_text(encoding="utf-8"), comments=True)


def _script_args_file() -> Path | None:
    """``<script>.args`` beside the running script, when there is a script name."""
    if not sys.argv or not sys.argv[0]:
        return None
    script = Path(sys.argv[0])
    return script.with_suffix(".args") if script.name else None


class HfArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose options are the fields of dataclasses.

    Every ``init=True`` field becomes ``--field_name`` (and ``--field-name``); the field's
    ``metadata`` supplies ``help``, ``aliases`` (more option strings) and any other
    ``add_argument`` keyword. A dataclass with an ``_argument_group_name`` class attribute
    gets its own help section. The parsed values become instances of the dataclasses, in
    the order they were given, so their ``__post_init__`` validation runs as usual.

    Args:
        dataclass_types: one dataclass type or an iterable of them.
        **kwargs: passed to ``argparse.ArgumentParser``; ``formatter_class`` defaults to
            ``argparse.ArgumentDefaultsHelpFormatter`` so that ``--help`` shows defaults.

    Raises:
        TypeError: something other than a dataclass type was passed, or its annotations
            cannot be resolved.
        ValueError: a field's annotation or metadata has no command-line form.
    """

    def __init__(self, dataclass_types: DataClassType | Iterable[DataClassType], **kwargs: Any):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)
        self.dataclass_types: list[type] = _as_dataclass_types(dataclass_types)
        self._layouts: list[tuple[type, dict[str, FieldSpec]]] = []
        for dtype in self.dataclass_types:
            self._add_dataclass_arguments(dtype)

    def _add_dataclass_arguments(self, dtype: type) -> None:
        hints = _resolve_hints(dtype)
        group_name = getattr(dtype, "_argument_group_name", None)
        container: Any = self.add_argument_group(group_name) if group_name else self
        specs: dict[str, FieldSpec] = {}
        # Dict values a dataclass's constructor takes beyond its annotations (it checks
        # them): the JSON transformers 5 writes holds some (hub_private_repo: null).
        wider: dict[str, tuple[type, ...]] = getattr(dtype, "_dict_value_types", {})
        for field in dataclasses.fields(dtype):
            if not field.init:
                continue
            hint = hints.get(field.name, field.type)
            spec = build_field_spec(field, hint, tuple(wider.get(field.name, ())))
            spec.add_to(container, field.metadata)
            specs[field.name] = spec
        self._layouts.append((dtype, specs))

    # ------------------------------------------------------------------ command line

    def parse_args_into_dataclasses(
        self,
        args: Iterable[str] | None = None,
        return_remaining_strings: bool = False,
        look_for_args_file: bool = True,
        args_filename: str | os.PathLike[str] | None = None,
        args_file_flag: str | None = None,
    ) -> tuple[Any, ...]:
        """Parse command-line strings into one instance per dataclass type.

        Arguments are read, in this order, from: ``args_filename`` (or, when it is not
        given and ``look_for_args_file`` is set, ``<script>.args`` beside ``sys.argv[0]``
        if that file exists); the files named by each ``args_file_flag`` option (e.g.
        ``--args_file a.args --args_file b.args``); then ``args`` (``sys.argv[1:]`` when
        None). A later value wins, so the command line overrides the files. Args files
        are split like a shell line: quotes group words and ``#`` starts a comment.

        Args:
            args: the strings to parse; ``sys.argv[1:]`` when None.
            return_remaining_strings: return the strings no option consumed as the last
                element instead of raising.
            look_for_args_file: read ``<script>.args`` beside the running script.
            args_filename: an args file to read instead of ``<script>.args``.
            args_file_flag: an option, such as ``"--args_file"``, naming args files on
                the command line; it may be repeated.

        Returns:
            The dataclass instances in the order of ``dataclass_types``; then an
            ``argparse.Namespace`` of any options added with ``add_argument`` that belong
            to no dataclass (only when there are some); then the remaining strings (only
            with ``return_remaining_strings``).

        Raises:
            ValueError: some strings were not used and ``return_remaining_strings`` is
                False.
            FileNotFoundError: ``args_filename`` or a file named by ``args_file_flag``
                does not exist.
        """
        argv = list(sys.argv[1:] if args is None else args)
        argv = self._with_args_files(argv, look_for_args_file, args_filename, args_file_flag)
        namespace, remaining = self.parse_known_args(args=argv)
        outputs = self._instances_from_namespace(namespace)
        if return_remaining_strings:
            return (*outputs, remaining)
        if remaining:
            raise ValueError(
                f"Some arguments are not used by HfArgumentParser: {remaining}. Check their "
                "spelling against --help, or pass return_remaining_strings=True to get them "
                "back."
            )
        return tuple(outputs)

    def _with_args_files(
        self,
        argv: list[str],
        look_for_args_file: bool,
        args_filename: str | os.PathLike[str] | None,
        args_file_flag: str | None,
    ) -> list[str]:
        """Prepend the contents of the args files to ``argv`` (files first, so argv wins)."""
        files: list[Path] = []
        if args_filename is not None:
            files.append(_existing(Path(args_filename), "args_filename"))
        elif look_for_args_file:
            script_file = _script_args_file()
            if script_file is not None and script_file.is_file():
                files.append(script_file)
        if args_file_flag:
            flag_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
            flag_parser.add_argument(args_file_flag, dest="files", action="append", default=[])
            flag_namespace, argv = flag_parser.parse_known_args(args=argv)
            files.extend(_existing(Path(p), args_file_flag) for p in flag_namespace.files)
        file_args = [token for path in files for token in _read_args_file(path)]
        return file_args + argv

    def _instances_from_namespace(self, namespace: argparse.Namespace) -> list[Any]:
        values = dict(vars(namespace))
        outputs: list[Any] = []
        for dtype, specs in self._layouts:
            inputs: dict[str, Any] = {}
            for name, spec in specs.items():
                value = values.pop(name, _ABSENT)
                # a default_factory value shared by every parse: let the class build its own
                if value is _ABSENT or (spec.from_factory and value is spec.default):
                    continue
                inputs[name] = value
            outputs.append(dtype(**inputs))
        if values:
            outputs.append(argparse.Namespace(**values))
        return outputs

    # ------------------------------------------------------------------ dicts and files

    def parse_dict(
        self, args: Mapping[str, Any], allow_extra_keys: bool = False
    ) -> tuple[Any, ...]:
        """Build one instance per dataclass type from a dict of field values.

        Values are checked against the field annotations and coerced only where nothing
        is lost: an int for a float field, a numeric string (YAML reads ``1e-4`` as a
        string) for a number, ``"true"``/``"false"`` for a bool, one value for a list
        field. Everything else that does not match is rejected.

        Args:
            args: field name -> value, for the fields of all the dataclass types.
            allow_extra_keys: ignore keys that are no field instead of raising.

        Returns:
            The dataclass instances in the order of ``dataclass_types``.

        Raises:
            ValueError: a key is no field of any dataclass (the message suggests the
                closest field name), a value does not fit its field, or a required
                field is missing.
        """
        if not isinstance(args, Mapping):
            raise TypeError(
                f"parse_dict takes a mapping of field names to values, got "
                f"{type(args).__name__}. Pass a dict such as {{'output_dir': 'out'}}."
            )
        if not allow_extra_keys:
            self._check_keys(args)
        return tuple(self._instance_from_dict(dtype, specs, args) for dtype, specs in self._layouts)

    def _instance_from_dict(
        self, dtype: type, specs: dict[str, FieldSpec], args: Mapping[str, Any]
    ) -> Any:
        inputs = {name: spec.coerce(args[name]) for name, spec in specs.items() if name in args}
        missing = [name for name, spec in specs.items() if spec.required and name not in inputs]
        if missing:
            raise ValueError(
                f"{dtype.__name__} needs a value for {missing}, which have no default. Add "
                "them to the dict or file."
            )
        return dtype(**inputs)

    def _check_keys(self, args: Mapping[Any, Any]) -> None:
        known = [name for _, specs in self._layouts for name in specs]
        unknown = [key for key in args if key not in known]
        if unknown:
            raise ValueError(self._unknown_keys_message(unknown, known))

    def _unknown_keys_message(self, unknown: list[Any], known: list[str]) -> str:
        import difflib

        described = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), known, n=1)
            described.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
        owners = ", ".join(dtype.__name__ for dtype in self.dataclass_types)
        return (
            f"Unknown keys for {owners}: {', '.join(described)}. Fix their spelling, remove "
            "them, or pass allow_extra_keys=True to ignore keys that are no field."
        )

    def parse_json_file(
        self, json_file: str | os.PathLike[str], allow_extra_keys: bool = False
    ) -> tuple[Any, ...]:
        """Build the dataclass instances from a JSON file holding one object.

        Same checks as :meth:`parse_dict`.

        Raises:
            ValueError: the file is not valid JSON, its top level is not an object, or a
                key or value is rejected by :meth:`parse_dict`.
        """
        path = Path(json_file)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from error
        return self.parse_dict(_mapping_from_file(data, path), allow_extra_keys=allow_extra_keys)

    def parse_yaml_file(
        self, yaml_file: str | os.PathLike[str], allow_extra_keys: bool = False
    ) -> tuple[Any, ...]:
        """Build the dataclass instances from a YAML file holding one mapping.

        Same checks as :meth:`parse_dict`; an empty file means an empty mapping. PyYAML
        is imported here, not at module level, so ``import trainer_args`` stays light.

        Raises:
            ValueError: the file is not valid YAML, its top level is not a mapping, or a
                key or value is rejected by :meth:`parse_dict`.
        """
        import yaml

        path = Path(yaml_file)
        try:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        except yaml.YAMLError as error:
            raise ValueError(f"{path} is not valid YAML: {error}") from error
        data = {} if data is None else data
        return self.parse_dict(_mapping_from_file(data, path), allow_extra_keys=allow_extra_keys)

    # ------------------------------------------------------------------ the way back

    def to_command_line(self, obj: Any) -> list[str]:
        """Command-line strings that this parser reads back into an equal object.

        Fields equal to their default are left out. Scalars are written ``--name=value``
        (so values starting with ``-`` stay values), bools as ``true``/``false``, enums as
        their value, dicts as JSON, lists as ``--name v1 v2``.

        Args:
            obj: an instance of one of the parser's dataclass types, or a mapping of
                field names to values such as ``TrainingArguments.to_dict()``.

        Returns:
            The strings, ready for :meth:`parse_args_into_dataclasses`.

        Raises:
            TypeError: ``obj`` is neither an instance of a parser dataclass nor a mapping.
            ValueError: a mapping key is no field, or a value has no command-line form
                (``None`` where the default is not ``None``, or an empty list for a list
                option whose default is not empty).
        """
        if isinstance(obj, Mapping):
            self._check_keys(obj)
            pairs = [
                (spec, obj[n])
                for _, specs in self._layouts
                for n, spec in specs.items()
                if n in obj
            ]
        else:
            specs = self._specs_of_instance(obj)
            pairs = [(spec, getattr(obj, name)) for name, spec in specs.items()]
        return [token for spec, value in pairs for token in spec.to_tokens(value)]

    def _specs_of_instance(self, obj: Any) -> dict[str, FieldSpec]:
        for dtype, specs in self._layouts:
            if isinstance(obj, dtype):
                return specs
        names = ", ".join(dtype.__name__ for dtype in self.dataclass_types)
        raise TypeError(
            f"to_command_line takes an instance of {names} or a mapping of their field "
            f"names, got {type(obj).__name__}."
        )


def _existing(path: Path, source: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"The args file {str(path)!r} given by {source} does not exist. Check the path "
            f"(relative paths start from {os.getcwd()!r})."
        )
    return path


def _mapping_from_file(data: Any, path: Path) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{path} must hold a mapping of field names to values at its top level, got "
            f"a {type(data).__name__}."
        )
    return data
