"""Generate Python code for every proto under protos/ into the m2x package tree.

The proto package path (m2x/<service>/v1) equals the Python import path, so the generated
modules import each other without rewriting. Besides the code, protoc writes type stubs: the
messages' `_pb2.pyi` (protoc's own) and the services' `_pb2_grpc.pyi` (mypy-protobuf, asyncio
only, as every server and client here is grpc.aio), which mypy reads instead of the code.
Output is regenerated only when a .proto, the generator options or a generator's version
changed, or a generated file is missing (a hash of the first three is kept in m2x/.protos-hash),
so `make setup` stays quick.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from importlib import metadata
from pathlib import Path

from google.rpc import status_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
STAMP = ROOT / "m2x" / ".protos-hash"
# What protoc writes, besides the __init__.py files: the output flags and, per .proto, the
# suffixes of the files they produce (both stub generators write a file even for a .proto
# without a service).
OUTPUTS = [
    f"--python_out={ROOT}",
    f"--pyi_out={ROOT}",
    f"--grpc_python_out={ROOT}",
    f"--mypy_grpc_out=only_async,quiet:{ROOT}",
]
SUFFIXES = ["_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"]
GENERATORS = ["grpcio-tools", "mypy-protobuf"]


def sources_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(PROTOS)).encode())
        digest.update(path.read_bytes())
    for flag in OUTPUTS:
        digest.update(flag.replace(str(ROOT), "").encode())
    for name in GENERATORS:
        digest.update(f"{name}=={generator_version(name)}".encode())
    return digest.hexdigest()


def generator_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        raise SystemExit(
            f"{name} is not installed: install the dev extra of pyproject.toml"
        ) from None


def outputs(files: list[Path]) -> list[Path]:
    return [
        ROOT / proto.parent.relative_to(PROTOS) / f"{proto.stem}{suffix}"
        for proto in files
        for suffix in SUFFIXES
    ]


def plugin(name: str) -> str:
    """The plugin's script beside this interpreter (the venv's bin/, which need not be on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} was not found: install the dev extra of pyproject.toml")
    return f"--plugin={name}={found}"


def main() -> int:
    files = sorted(PROTOS.rglob("*.proto"))
    wanted = sources_hash(files)
    fresh = STAMP.exists() and STAMP.read_text() == wanted
    if fresh and all(path.exists() for path in outputs(files)) and "--force" not in sys.argv:
        return 0
    include = Path(protoc.__file__).parent / "_proto"
    # google/rpc/status.proto ships with googleapis-common-protos (a grpcio-status dependency).
    googleapis = Path(status_pb2.__file__).parents[2]
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"-I{googleapis}",
        plugin("protoc-gen-mypy_grpc"),
        *OUTPUTS,
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
