"""A target for the benchmarks, in a process of its own: python -m bench.target_server."""

from __future__ import annotations

import sys

from tests.support.servers import TargetServer


def main() -> None:
    server = TargetServer()
    print(server.port, flush=True)
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    sys.exit(main())
