#!/usr/bin/env python3
"""Measure the built artifacts: size, `--help` wall time, and `serve` ready time (medians).

Usage:
  python scripts/bench_dist.py [--runs=<n>]      (after `python scripts/build`)

`serve` ready = from spawning the process to the first tools/list answered through the MCP
client. For the zipapp, "first" runs unpack into a fresh SHIV_ROOT each; the one-file binary
unpacks itself at every start, so its first run differs from later ones only by disk caches.
The session points at a closed port, so no Temporal server is touched.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def help_time(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([*argv, "--help"], check=True, capture_output=True, env=env)
    return time.perf_counter() - started


async def ready_time(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    params = StdioServerParameters(command=argv[0], args=[*argv[1:], "serve"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        return time.perf_counter() - started


def measure(label: str, argv: list[str], runs: int, fresh_root: bool) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "SHIV_"))}
    base.update(TEMPORAL_ADDRESS="127.0.0.1:1", CLAUDE_TEMPO_LOG="ERROR")
    with tempfile.TemporaryDirectory() as scratch:
        def env(root: str) -> dict:
            if root == "fresh":  # a zipapp's first run: nothing unpacked yet
                shutil.rmtree(Path(scratch) / root, ignore_errors=True)
            return {**base, "SHIV_ROOT": str(Path(scratch) / root), "HOME": scratch}

        first = "fresh" if fresh_root else "shared"
        firsts_help = [help_time(argv, env(first)) for _ in range(3 if fresh_root else 1)]
        firsts_ready = [anyio.run(ready_time, argv, env(first)) for _ in range(3 if fresh_root else 1)]
        help_time(argv, env("shared"))  # unpack into the shared root once
        later_help = [help_time(argv, env("shared")) for _ in range(runs)]
        later_ready = [anyio.run(ready_time, argv, env("shared")) for _ in range(runs)]
    med = statistics.median
    print(f"| {label} | {med(firsts_help):.2f} s | {med(later_help):.2f} s "
          f"| {med(firsts_ready):.2f} s | {med(later_ready):.2f} s |", flush=True)


def main() -> int:
    runs = int(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--runs=")), "5"))
    exe = ".exe" if os.name == "nt" else ""
    print("| artifact | size |\n|---|---|")
    for path in (DIST / "tempo.pyz", DIST / f"tempo{exe}", DIST / f"tempo-full{exe}"):
        if path.exists():
            print(f"| {path.name} | {path.stat().st_size / 1e6:.1f} MB |")
    print("\n| artifact | --help first | --help later | serve ready first | serve ready later |\n|---|---|---|---|---|")
    measure("source (python tempo.py)", [sys.executable, str(ROOT / "tempo.py")], runs, fresh_root=False)
    if (DIST / "tempo.pyz").exists():
        measure("tempo.pyz", [BASE_PYTHON, str(DIST / "tempo.pyz")], runs, fresh_root=True)
    for name in (f"tempo{exe}", f"tempo-full{exe}"):
        if (DIST / name).exists():
            measure(name, [str(DIST / name)], runs, fresh_root=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
