"""Generate the Python protobuf/gRPC modules from proto/csu/v1/*.proto into services/common/pb.

protoc writes imports as `from csu.v1 import x_pb2`; the generated package lives under
services.common.pb, so those imports are rewritten. The output is not committed: `make proto`
rebuilds it from the .proto files with the pinned grpcio-tools, which makes it reproducible.

The type stubs (.pyi) come from mypy-protobuf where it is installed (the dev extra: `make proto`,
`make lint`), which also types the gRPC stubs and servicers (_pb2_grpc.pyi) for mypy; the image
installs runtime dependencies only and type-checks nothing, so there protoc's own message stubs do.
"""

import os
import re
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "services" / "common" / "pb"
IMPORT = re.compile(r"^from csu\.v1 import ", re.MULTILINE)


def _stub_options() -> list[str]:
    """protoc's options for the .pyi stubs: mypy-protobuf's plugins beside this Python or on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    mypy, mypy_grpc = (shutil.which(f"protoc-gen-{name}", path=path) for name in ("mypy", "mypy_grpc"))
    if mypy is None or mypy_grpc is None:
        return [f"--pyi_out={OUT_DIR}"]
    return [
        f"--plugin=protoc-gen-mypy={mypy}",
        f"--plugin=protoc-gen-mypy_grpc={mypy_grpc}",
        f"--mypy_out=quiet:{OUT_DIR}",
        f"--mypy_grpc_out=quiet:{OUT_DIR}",
    ]


def main() -> int:
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    OUT_DIR.mkdir(parents=True)
    sources = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "csu").rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={OUT_DIR}",
            *_stub_options(),
            f"--grpc_python_out={OUT_DIR}",
            *sources,
        ]
    )
    if code != 0:
        return code
    for path in OUT_DIR.rglob("*.py*"):
        path.write_text(IMPORT.sub("from services.common.pb.csu.v1 import ", path.read_text()))
    for package in (OUT_DIR, OUT_DIR / "csu", OUT_DIR / "csu" / "v1"):
        (package / "__init__.py").touch()
    print(f"generated {len(sources)} proto files into {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
