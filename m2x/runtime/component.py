"""The common `main` of every component: settings, logging, telemetry, uvloop, exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from m2x.runtime.logs import setup_logging
from m2x.runtime.settings import SettingsError, add_flags, load_settings
from m2x.runtime.telemetry import setup_telemetry

S = TypeVar("S")

EXIT_SETTINGS = 2


def run_component(
    component: str,
    settings_cls: type[S],
    serve: Callable[[S], Coroutine[Any, Any, None]],
    argv: list[str] | None,
    description: str,
) -> int:
    """Parse flags, load settings (or exit 2 naming each bad value), then run `serve`."""
    parser = argparse.ArgumentParser(prog=f"m2x serve {component}", description=description)
    parser.add_argument("--config", type=Path, default=None, help="TOML settings file")
    add_flags(parser, settings_cls)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(settings_cls, component, flags=args, config_file=args.config)
    except SettingsError as exc:
        print(f"m2x {component}: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    setup_logging(component, getattr(settings, "log_level", "INFO"))
    telemetry = setup_telemetry(component)
    try:
        uvloop.run(serve(settings))
    except KeyboardInterrupt:
        pass
    finally:
        telemetry.shutdown()
    return 0
