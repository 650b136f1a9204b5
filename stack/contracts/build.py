"""Compile Ensign's Vyper contracts into ``stack/contracts/artifacts.json``.

Usage::

    python -m stack.contracts.build          # write artifacts.json
    python -m stack.contracts.build --check  # exit 1 if artifacts.json is out of date

The output is deterministic (sorted keys, fixed formatting, the compiler version recorded), so a
recompile with the same Vyper gives the same bytes. Vyper is a build/test dependency only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from stack.contracts import ARTIFACTS_PATH, CONTRACT_NAMES, CONTRACTS_DIR

# The sources carry `# pragma version 0.4.3`; the compiler refuses anything else.
VYPER_VERSION = "0.4.3"


def compile_contract(source_path: Path) -> dict[str, Any]:
    """Compile one Vyper source; returns its abi, bytecode, runtime and storage layout."""
    from vyper.compiler import compile_code  # type: ignore[import-untyped]

    # contract_path relative to the package keeps absolute checkout paths out of the output.
    output = compile_code(
        source_path.read_text(encoding="utf-8"),
        contract_path=source_path.relative_to(CONTRACTS_DIR.parent.parent).as_posix(),
        output_formats=["abi", "bytecode", "bytecode_runtime", "layout"],
    )
    return {
        "abi": output["abi"],
        "bytecode": output["bytecode"],
        "runtime": output["bytecode_runtime"],
        "storage_layout": json.loads(json.dumps(output["layout"]["storage_layout"])),
    }


def build_artifacts() -> dict[str, Any]:
    """Compile every contract in ``CONTRACT_NAMES`` with the installed Vyper."""
    import vyper  # type: ignore[import-untyped]

    if vyper.__version__ != VYPER_VERSION:
        raise RuntimeError(f"vyper {VYPER_VERSION} is required, found {vyper.__version__}")
    return {
        "vyper_version": vyper.__version__,
        "contracts": {name: compile_contract(CONTRACTS_DIR / f"{name}.vy") for name in CONTRACT_NAMES},
    }


def render(artifacts: dict[str, Any]) -> str:
    """The exact text written to artifacts.json."""
    return json.dumps(artifacts, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.contracts.build", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    parser.add_argument("--output", type=Path, default=ARTIFACTS_PATH, help="artifacts file (default: %(default)s)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    text = render(build_artifacts())
    elapsed = time.perf_counter() - started
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m stack.contracts.build", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date (compiled in {elapsed:.2f}s)")
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(CONTRACT_NAMES)} contracts, compiled in {elapsed:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
