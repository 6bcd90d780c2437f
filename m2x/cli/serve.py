"""`m2x serve <component>`: one component alone in this process, as in a container."""

from __future__ import annotations

import importlib
import sys

from m2x.supervisor.components import COMPONENTS, find


def run_serve(name: str, argv: list[str]) -> int:
    try:
        component = find(name)
    except KeyError as exc:
        print(f"m2x serve: {exc.args[0]}", file=sys.stderr)
        return 2
    entry = importlib.import_module(f"{component.module}.__main__")
    return int(entry.main(argv) or 0)


def component_names() -> list[str]:
    return [component.name for component in COMPONENTS]
