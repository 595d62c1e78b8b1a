"""Run the sandbox standalone: `WAYCORE_API_KEY=... python -m waycore.sandbox --port 8010`.

The root key is read from the `WAYCORE_API_KEY` environment variable (never from the command
line, where it would show in the process list) and is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from .app import Sandbox
from .config import SandboxConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m waycore.sandbox",
        description="Serve the local Waycore sandbox (/v1 and /_sandbox) with uvicorn.",
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--database", default=":memory:", help="SQLite file, or :memory:")
    parser.add_argument(
        "--activation-seconds", type=float, default=8.0, help="setupCompletion -> activation"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed for generated data")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    api_key = os.environ.get("WAYCORE_API_KEY", "").strip()
    if not api_key:
        sys.stderr.write(
            "waycore.sandbox: set WAYCORE_API_KEY to the root API key the sandbox should accept,"
            " e.g. export WAYCORE_API_KEY=way_test_local_$(openssl rand -hex 16)\n"
        )
        return 2
    config = SandboxConfig(
        api_key=api_key,
        database=args.database,
        activation_seconds=args.activation_seconds,
        seed=args.seed,
    )
    sandbox = Sandbox(config)
    sys.stderr.write(
        f"Waycore sandbox on http://{args.host}:{args.port} (database {args.database},"
        f" activation {args.activation_seconds:g}s, seed {args.seed})\n"
    )
    uvicorn.run(sandbox.app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
