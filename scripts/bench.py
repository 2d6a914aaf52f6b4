"""Measure tempo against a real Temporal dev server and print medians.

Usage:
  bench.py [--cues=<n>] [--quick]

Options:
  --cues=<n>   Cues for the latency figure [default: 200].
  --quick      Smaller runs, for a smoke check.

Figures: cue delivery latency (sender's `cue` call to the recipient's channel notification)
p50/p99; fan-out throughput; `ensemble` time with 50 and 200 players; `tempo serve` start to
first `tools/list`; memory per session; the Copilot bridge's start to ready and cue to model
request (the real Copilot CLI from node_modules on a scripted loopback model). The sessions are
real `tempo serve` processes driven by the MCP SDK's stdio client (the test harness in
tests/conftest.py and tests/test_bridge.py, reused here).
"""

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import tempo  # noqa: E402
from conftest import DevServer, free_port, play  # noqa: E402

TARGETS = {  # from the issue: bench figures, never timed tests
    "cue p50 ms": 25,
    "cue p99 ms": 100,
    "ensemble@200 ms": 250,
    "serve ready s": 1.5,
}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def report(label: str, value: float, unit: str, target_key: str | None = None) -> None:
    target = TARGETS.get(target_key) if target_key else None
    verdict = "" if target is None else ("  ok" if value <= target else f"  OVER target {target}")
    print(f"{label:<44} {value:>9.1f} {unit}{verdict}", flush=True)


async def cue_latency(server: DevServer, n: int) -> None:
    async with play(server, "bench-latency") as a, play(server, "bench-latency") as b:
        bob = await b.name()
        for _ in range(10):  # warm up: worker caches, connections
            await a.call("cue", to=bob, message="warm")
            await b.next_cue()
        samples = []
        for i in range(n):
            t0 = time.perf_counter()
            await a.call("cue", to=bob, message=f"m{i}")
            await b.next_cue()
            samples.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.02)  # ~20 msg/s, as NOTES measured the designs
    report(f"cue latency p50 ({n} cues)", statistics.median(samples), "ms", "cue p50 ms")
    report(f"cue latency p99 ({n} cues)", pct(samples, 99), "ms", "cue p99 ms")


async def fan_out(server: DevServer, recipients: int, per_recipient: int) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sender = await stack.enter_async_context(play(server, "bench-fanout"))
        players = [await stack.enter_async_context(play(server, "bench-fanout")) for _ in range(recipients)]
        names = [await p.name() for p in players]

        async def drain(p) -> None:
            for _ in range(per_recipient):
                await p.next_cue(timeout=60)

        t0 = time.perf_counter()
        drains = [asyncio.create_task(drain(p)) for p in players]
        for i in range(per_recipient):
            await asyncio.gather(*(sender.call("cue", to=name, message=f"m{i}") for name in names))
        await asyncio.gather(*drains)
        elapsed = time.perf_counter() - t0
    total = recipients * per_recipient
    report(f"fan-out: {total} cues to {recipients} players", total / elapsed, "cues/s")


async def ensemble_time(server: DevServer, sizes: tuple[int, ...]) -> None:
    from tempo_workflows import PlayerInfo, PlayerInput, PlayerWorkflow, search_attributes, workflow_id

    client = await tempo.connect(tempo.Config(address=server.address))
    for size in sizes:
        name = f"bench-ens{size}"
        async with play(server, name) as me:
            await me.name()
            for i in range(size - 1):  # the other players: registered workflows, as sessions make them
                info = PlayerInfo(ensemble=name, name=f"p{i}", part="benchmarking", directory="/src/app",
                                  host="bench", started=tempo.utcnow())
                await client.start_workflow(
                    PlayerWorkflow.run, PlayerInput(info=info), id=workflow_id(name, info.name),
                    task_queue="claude-tempo", search_attributes=search_attributes(info),
                    memo={"info": tempo.dataclasses.asdict(info)},
                )

            async def full() -> bool:
                return len((await me.call("ensemble"))["players"]) == size

            deadline = time.monotonic() + 30
            while not await full() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            samples = []
            for _ in range(15):
                t0 = time.perf_counter()
                await me.call("ensemble")
                samples.append((time.perf_counter() - t0) * 1000)
            report(f"ensemble with {size} players", statistics.median(samples), "ms",
                   "ensemble@200 ms" if size == 200 else None)
            for i in range(size - 1):
                await client.get_workflow_handle(workflow_id(name, f"p{i}")).terminate("bench done")


async def serve_ready(server: DevServer, runs: int) -> None:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from conftest import serve_command, tempo_env

    samples = []
    for _ in range(runs):
        exe, args = serve_command()
        params = StdioServerParameters(command=exe, args=args, env=tempo_env(server, "bench-ready"))
        t0 = time.perf_counter()
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            await client.list_tools()
            samples.append(time.perf_counter() - t0)
    report(f"serve start to first tools/list (median of {runs})", statistics.median(samples), "s", "serve ready s")


async def memory(server: DevServer) -> None:
    async with play(server, "bench-mem") as a:
        name = await a.name()
        await a.call("ensemble")
        client = await tempo.connect(tempo.Config(address=server.address))
        _, info = await tempo.find_player(client, "bench-mem", name)
        rss_kib = int(next(line.split()[1] for line in Path(f"/proc/{info.pid}/status").read_text().splitlines()
                           if line.startswith("VmRSS")))
    report("memory per session (RSS of tempo serve)", rss_kib / 1024, "MiB")


async def copilot_bridge(server: DevServer, starts: int, cues: int) -> None:
    from scripted_model import ScriptedModel
    from test_bridge import COPILOT_CLI, cue_text, running_bridge

    if not COPILOT_CLI.is_file():
        print("copilot bridge: skipped (npm ci installs the Copilot CLI into node_modules)", flush=True)
        return
    ready, latency = [], []
    with ScriptedModel() as model, tempfile.TemporaryDirectory() as tmp:
        for i in range(starts):
            t0 = time.perf_counter()
            async with running_bridge(server, "bench-copilot", Path(tmp) / f"s{i}", model):
                ready.append(time.perf_counter() - t0)
        async with play(server, "bench-copilot") as alice, running_bridge(server, "bench-copilot", Path(tmp) / "c", model):
            for i in range(cues + 2):  # the first two warm up the CLI and the connections
                t0 = time.monotonic()
                sent = await alice.call("cue", to="copilot-1", message=f"m{i}")
                request = await asyncio.to_thread(model.wait_for, lambda r: sent["message_id"] in cue_text(r))
                if i >= 2:
                    latency.append((request.at - t0) * 1000)
                await asyncio.sleep(0.3)  # let the model's turn end
    report(f"copilot bridge start to ready (median of {starts})", statistics.median(ready), "s")
    report(f"cue to Copilot model request (median of {cues})", statistics.median(latency), "ms")


async def run(args, server: DevServer) -> None:
    print(f"tempo {tempo.__version__} bench against a dev server at {server.address}", flush=True)
    quick = args["--quick"]
    await serve_ready(server, 3 if quick else 7)
    await cue_latency(server, int(args["--cues"]))
    await fan_out(server, 3 if quick else 5, 20 if quick else 50)
    await ensemble_time(server, (50,) if quick else (50, 200))
    await memory(server)
    await copilot_bridge(server, 3 if quick else 5, 5 if quick else 20)
    print(f"idle cost: one long-poll Update per {tempo.POLL_WAIT:.0f} s = "
          f"{86400 / tempo.POLL_WAIT:.0f} updates a day per idle session", flush=True)


def main() -> int:
    from docopt import docopt

    args = docopt(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        argv = tempo.dev_server_argv(tempo.temporal_binary(), "127.0.0.1", port, str(Path(tmp) / "bench.db"),
                                     http_port=free_port(), metrics_port=free_port())
        server = DevServer(address=f"127.0.0.1:{port}", process=None, db="", argv=argv)
        server.start()
        try:
            asyncio.run(run(args, server))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
