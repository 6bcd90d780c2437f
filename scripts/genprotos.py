"""Generate Python code for every proto under protos/ into the m2x package tree.

The proto package path (m2x/<service>/v1) equals the Python import path, so the generated
modules import each other without rewriting. Output is regenerated only when a .proto changed
(a hash of all sources is kept in each generated folder), so `make setup` stays quick.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from google.rpc import status_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
STAMP = ROOT / "m2x" / ".protos-hash"


def sources_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(PROTOS)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def main() -> int:
    files = sorted(PROTOS.rglob("*.proto"))
    wanted = sources_hash(files)
    if STAMP.exists() and STAMP.read_text() == wanted and "--force" not in sys.argv:
        return 0
    include = Path(protoc.__file__).parent / "_proto"
    # google/rpc/status.proto ships with googleapis-common-protos (a grpcio-status dependency).
    googleapis = Path(status_pb2.__file__).parents[2]
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"-I{googleapis}",
        f"--python_out={ROOT}",
        f"--pyi_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        *[str(f) for f in files],
    ]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    for proto in files:
        folder = ROOT / proto.parent.relative_to(PROTOS)
        while folder != ROOT / "m2x":
            (folder / "__init__.py").touch()
            folder = folder.parent
    STAMP.write_text(wanted)
    print(f"generated code for {len(files)} proto file(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
