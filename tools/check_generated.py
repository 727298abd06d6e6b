"""Fail when the committed stubs in client/agentjobs/v1 differ from what `make proto` makes.

Regenerates into a temporary directory with the pinned grpcio-tools and compares
byte for byte, so a stale or hand-edited stub cannot land.
"""

from __future__ import annotations

import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "client" / "agentjobs" / "v1"


def main() -> int:
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").rglob("*.proto"))
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                "-I",
                "protos",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                *protos,
            ],
            cwd=ROOT,
            check=True,
        )
        fresh = Path(out) / "agentjobs" / "v1"
        expected = sorted(p.name for p in fresh.iterdir())
        committed = sorted(p.name for p in GENERATED.iterdir() if p.suffix in {".py", ".pyi"})
        stale = [
            n
            for n in expected
            if not (GENERATED / n).exists()
            or not filecmp.cmp(fresh / n, GENERATED / n, shallow=False)
        ]
        extra = sorted(set(committed) - set(expected))
    if stale or extra:
        print(f"generated code is stale: {stale or ''} {extra or ''}; run `make proto`")
        return 1
    print(f"generated code is fresh ({len(expected)} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
