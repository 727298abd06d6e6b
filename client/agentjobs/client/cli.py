"""The `agentjobs` console script. The commands need typer and rich (the `cli` extra);
`pip install agentjobs` alone must still answer with one clear line, not a traceback."""

from __future__ import annotations

import sys

# Top-level modules only the CLI needs (click comes with typer).
CLI_EXTRA_MODULES = frozenset({"typer", "click", "rich"})
MISSING_EXTRA = (
    "error: MISSING_DEPENDENCY: the agentjobs CLI needs the cli extra: "
    "pip install 'agentjobs[cli]' (missing module: {module})"
)

_missing_module: str | None = None
try:
    from agentjobs.client.cli_app import build_app

    app = build_app()
except ModuleNotFoundError as missing:
    _missing_module = (missing.name or "").partition(".")[0]
    if _missing_module not in CLI_EXTRA_MODULES:
        raise


def main() -> None:
    if _missing_module is not None:
        print(MISSING_EXTRA.format(module=_missing_module), file=sys.stderr)
        sys.exit(1)
    app()


if __name__ == "__main__":
    main()
