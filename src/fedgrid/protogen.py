"""Generate the Python protobuf and gRPC modules from the `.proto` sources."""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "protos"
OUTPUT_ROOT = REPO / "src"


def proto_sources() -> list[Path]:
    """Every `.proto` file of the project, in a stable order."""
    return sorted((PROTO_ROOT / "fedgrid" / "v1").glob("*.proto"))


def generate(output_root: Path = OUTPUT_ROOT) -> None:
    """Write `fedgrid/v1/*_pb2.py`, `.pyi` and `_pb2_grpc.py` under output_root."""
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={output_root}",
        f"--pyi_out={output_root}",
        f"--grpc_python_out={output_root}",
        *(str(path.relative_to(PROTO_ROOT)) for path in proto_sources()),
    ]
    (output_root / "fedgrid" / "v1").mkdir(parents=True, exist_ok=True)
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    init = output_root / "fedgrid" / "v1" / "__init__.py"
    init.write_text('"""Generated protobuf modules (package fedgrid.v1)."""\n')


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT_ROOT)
