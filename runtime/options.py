"""Config dataclasses that make their own command-line flags and check their own values.

A field declared with :func:`option` carries its one default, its help, its choices and its bounds; from
those, :func:`add_options` writes the argparse flags (``--max-steps`` for ``max_steps``), :func:`from_args`
builds the config from the parsed flags, and :func:`check_options` (called by the config's
``__post_init__``) refuses a value out of bounds with a ``BadInputError`` naming the flag. A field declared
with :func:`nested` holds another such dataclass whose flags are added alongside.

Standard library only: a command builds its parser and checks its arguments before any model or torch loads.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from .errors import BadInputError


@dataclass(frozen=True)
class Option:
    help: str = ""
    choices: tuple | None = None
    type: type | None = None  # the value's type where the default (None) does not say
    at_least: float | None = None
    above: float | None = None
    below: float | None = None
    flag: str | None = None  # where the flag is not --<field name with dashes>
    exclusive: str | None = None  # options sharing this name are mutually exclusive
    metavar: str | None = None


def option(default: Any, help: str = "", **spec) -> Any:
    """A config field that is also a command-line option (see :class:`Option` for ``spec``)."""
    return field(default=default, metadata={"option": Option(help=help, **spec)})


def nested(config_class: type) -> Any:
    """A config field holding another option dataclass, whose options join the parent's flags."""
    return field(default_factory=config_class, metadata={"nested": config_class})


def flag_of(f) -> str:
    spec = f.metadata["option"]
    if spec.flag:
        return spec.flag
    if f.default is True:
        return "--no-" + f.name.replace("_", "-")
    return "--" + f.name.replace("_", "-")


def _option_fields(config_class: type):
    """(field, Option) of the class and of its nested configs, in declaration order."""
    for f in fields(config_class):
        if "nested" in f.metadata:
            yield from _option_fields(f.metadata["nested"])
        elif "option" in f.metadata:
            yield f, f.metadata["option"]


def _help(f, spec: Option) -> str:
    if f.default is None or isinstance(f.default, bool):
        return spec.help
    default = f.default if not isinstance(f.default, float) else f"{f.default:g}"
    return f"{spec.help} (default {default})" if spec.help else f"default {default}"


def add_options(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One flag per option field of ``config_class`` (and of its nested configs), defaults from the fields."""
    groups: dict[str, Any] = {}
    for f, spec in _option_fields(config_class):
        target = parser
        if spec.exclusive:
            if spec.exclusive not in groups:
                groups[spec.exclusive] = parser.add_mutually_exclusive_group()
            target = groups[spec.exclusive]
        help = _help(f, spec).replace("%", "%%")
        if isinstance(f.default, bool):
            action = "store_false" if f.default else "store_true"
            target.add_argument(flag_of(f), dest=f.name, action=action, help=help)
            continue
        kind = spec.type or type(f.default)
        target.add_argument(flag_of(f), dest=f.name, type=_typed(kind), default=f.default, choices=spec.choices,
                            metavar=spec.metavar, help=help)


def _typed(kind: type):
    """argparse type: the value as ``kind`` (str, int, float, Path), the error saying what was expected."""
    if kind in (str, Path):
        return kind
    what = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None

    parse.__name__ = kind.__name__
    return parse


def from_args(config_class: type, args: argparse.Namespace):
    """The config the parsed flags describe (its checks run as it is made)."""
    values = {}
    for f in fields(config_class):
        if "nested" in f.metadata:
            values[f.name] = from_args(f.metadata["nested"], args)
        elif "option" in f.metadata and hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return config_class(**values)


def check_options(config) -> None:
    """Refuse a value outside its field's choices or bounds: a BadInputError naming the flag and what it expects."""
    for f in fields(config):
        value = getattr(config, f.name)
        if "nested" in f.metadata:
            if not is_dataclass(value):
                raise BadInputError(f"{f.name}: expected a {f.metadata['nested'].__name__}, got {value!r}")
            continue
        spec = f.metadata.get("option")
        if spec is None or value is None or isinstance(value, bool):
            continue
        problem = _problem(value, spec)
        if problem:
            raise BadInputError(f"{flag_of(f)} {value}: expected {problem}")


def _problem(value, spec: Option) -> str | None:
    if spec.choices is not None:
        return None if value in spec.choices else "one of " + ", ".join(map(str, spec.choices))
    bounds = [(spec.at_least, ">=", value >= spec.at_least if spec.at_least is not None else True),
              (spec.above, ">", value > spec.above if spec.above is not None else True),
              (spec.below, "<", value < spec.below if spec.below is not None else True)]
    if all(ok for _, _, ok in bounds):
        return None
    return "a value " + " and ".join(f"{sign} {bound:g}" for bound, sign, _ in bounds if bound is not None)


def defaults(config_class: type) -> dict[str, Any]:
    """Each option's default, by field name (nested configs' included)."""
    return {f.name: (f.default if f.default is not MISSING else f.default_factory()) for f, _ in _option_fields(config_class)}
