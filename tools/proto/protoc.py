"""protoc, as shipped inside grpcio-tools.

Using the compiler bundled with the locked grpcio-tools keeps generated code in step with
the locked protobuf runtime, and gives the same compiler with or without the Bazel Central
Registry. The well-known types (google/protobuf/*.proto) ship in the same wheel.
"""

import sys
from importlib import resources

from grpc_tools import protoc


def main() -> int:
    well_known = resources.files("grpc_tools") / "_proto"
    code: int = protoc.main(["protoc", *sys.argv[1:], f"-I{well_known}"])
    return code


if __name__ == "__main__":
    sys.exit(main())
