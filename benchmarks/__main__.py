"""Run benchmarks: ``python -m benchmarks all`` or ``python -m benchmarks NAME [--json FILE]``.

Each benchmark is a module ``benchmarks/NAME.py`` with ``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import benchmarks


def available() -> list[str]:
    """Names of the benchmark modules present."""
    here = Path(benchmarks.__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    """Dispatch to one benchmark or all of them."""
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m benchmarks all | " + " | ".join(names) + " [--json FILE]")
        return 0
    target, rest = argv[0], argv[1:]
    if target == "all":
        status = 0
        for name in names:
            print(f"\n=== {name} ===", flush=True)
            status |= importlib.import_module(f"benchmarks.{name}").main(rest)
        return status
    if target not in names:
        print(f"unknown benchmark {target!r}; choose from: all, {', '.join(names)}", file=sys.stderr)
        return 2
    return importlib.import_module(f"benchmarks.{target}").main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
