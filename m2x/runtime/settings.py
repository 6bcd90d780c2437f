"""Settings: one frozen dataclass per process, layered defaults < file < environment < flags.

A settings class declares its fields with defaults; `load_settings` fills them from a TOML
file (top-level keys for every component, `[<component>]` tables for one), then from the
environment (`M2X_<FIELD>`, overridden by `M2X_<COMPONENT>_<FIELD>`), then from command-line
flags (`--field-name value`). Every bad value is reported at once, naming where it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class SettingsError(Exception):
    """One or more settings were invalid; the message names each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))
        self.problems = problems


def setting(default: Any, help: str, check: Callable[[Any], str | None] | None = None) -> Any:
    """A dataclass field with help text and an optional check returning a problem or None."""
    return dataclasses.field(default=default, metadata={"help": help, "check": check})


def port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number from 0 to 65535"


def positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _coerce(kind: Any, raw: Any) -> Any:
    """Turn a raw value from a file, the environment or a flag into the field's type."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw is None or raw == "":
            return None
        return _coerce(inner[0], raw)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError("must be true or false")
    if kind is int:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError("must be an integer")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ValueError("must be an integer") from None
    if kind is float:
        if isinstance(raw, bool):
            raise ValueError("must be a number")
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
    if kind is Path:
        return Path(str(raw))
    if origin is tuple:
        items = raw if isinstance(raw, list) else [p for p in str(raw).split(",")]
        return tuple(str(i).strip() for i in items if str(i).strip())
    if kind is str:
        if not isinstance(raw, str | int | float):
            raise ValueError("must be a string")
        return str(raw)
    raise TypeError(f"unsupported settings type {kind!r}")


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Declare one `--field-name` flag per settings field (values are coerced later)."""
    for field in dataclasses.fields(cls):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            default=None,
            metavar="VALUE",
            help=f"{field.metadata.get('help', '')} (default: {field.default!r})",
        )


def settings_flags(settings: Any) -> list[str]:
    """The flags that give a copy of this process exactly these settings (see add_flags)."""
    flags = []
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):
            text = ",".join(str(item) for item in value)
        else:
            text = str(value)
        flags += ["--" + field.name.replace("_", "-"), text]
    return flags


def load_settings(
    cls: type[T],
    component: str,
    *,
    flags: Mapping[str, Any] | argparse.Namespace | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Build `cls` from defaults < file < environment < flags, or raise SettingsError."""
    environ = os.environ if environ is None else environ
    if isinstance(flags, argparse.Namespace):
        flags = vars(flags)
    flags = flags or {}
    config_file = config_file or (
        Path(environ["M2X_CONFIG"]) if environ.get("M2X_CONFIG") else None
    )

    problems: list[str] = []
    file_values: dict[str, Any] = {}
    document_section: dict[str, Any] = {}
    if config_file is not None:
        try:
            document = tomllib.loads(config_file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError([f"config file {config_file}: {exc}"]) from None
        file_values = {k: v for k, v in document.items() if not isinstance(v, dict)}
        section = document.get(component, {})
        document_section = section if isinstance(section, dict) else {}
        file_values.update(document_section)

    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    prefix = f"M2X_{component.upper()}_"
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        candidates: Sequence[tuple[str, Any]] = [
            (f"config file key {field.name!r}", file_values.get(field.name)),
            (f"M2X_{field.name.upper()}", environ.get(f"M2X_{field.name.upper()}")),
            (f"{prefix}{field.name.upper()}", environ.get(f"{prefix}{field.name.upper()}")),
            ("--" + field.name.replace("_", "-"), flags.get(field.name)),
        ]
        source, raw = next(((s, r) for s, r in reversed(candidates) if r is not None), ("", None))
        if raw is None:
            continue
        try:
            value = _coerce(hints[field.name], raw)
        except ValueError as exc:
            problems.append(f"{source}={raw!r}: {exc}")
            continue
        check = field.metadata.get("check")
        problem = check(value) if check and value is not None else None
        if problem:
            problems.append(f"{source}={raw!r}: {problem}")
            continue
        values[field.name] = value
    # Top-level file keys are shared by all components, so only this component's own table
    # can be judged: a key there that it does not know is a typo worth failing on.
    problems.extend(
        f"config file key [{component}].{k}: unknown setting"
        for k in sorted(set(document_section) - names)
    )
    if problems:
        raise SettingsError(problems)
    return cls(**values)
