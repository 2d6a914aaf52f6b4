"""Measure tempo against a real Temporal dev server and print medians.

Usage:
  bench.py [--cues=<n>] [--quick]

Options:
  --cues=<n>   Cues for the latency figure [default: 200].
  --quick      Smaller runs, for a smoke check.

Figures: cue delivery latency (sender's `cue` call to the recipient's channel notification)
p50/p99; fan-out throughput; `ensemble` time with 50 and 200 players; a `cue` to `all` of 50; `tempo serve` start to
first `tools/list`; memory per session; the `schedule` call and a scheduled cue's trigger to notification; `tempo hook` time (nothing pending / one cue) and the
waiter's memory; idle wake (cue sent to the scripted model's request) with the real Claude Code;
the dashboard's first paint with 200 players and the time from a cue to the page (in real
headless Chromium); the Copilot bridge's start to ready and cue to model request (the real
Copilot CLI from node_modules on a scripted loopback model). The sessions are real `tempo serve` processes driven by the MCP SDK's stdio
client (the test harness in tests/conftest.py, reused here).
"""

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import tempo  # noqa: E402
from temporalio import workflow  # noqa: E402
from conftest import DevServer, chromium, dashboard, free_port, play  # noqa: E402

TARGETS = {  # from the issue: bench figures, never timed tests
    "cue p50 ms": 25,
    "cue p99 ms": 100,
    "ensemble@200 ms": 250,
    "serve ready s": 1.5,
    "hook ms": 50,
    "waiter MiB": 15,
    "idle wake p50 ms": 500,
    "dashboard paint@200 ms": 1000,
    "dashboard exchange ms": 500,
    "broadcast@50 ms": 250,
    "cue/floor": 1.2,
}

# Injected into the dashboard page before its own script: marks when the cards are painted and
# when a wanted text first shows (the page itself carries no instrumentation).
PAGE_MARKS = """
window.__marks = {};
new MutationObserver(() => {
  const want = window.__want;
  if (want && !window.__marks[want] && document.body && document.body.textContent.includes(want)) window.__marks[want] = Date.now();
  if (!window.__painted && document.querySelectorAll('.card').length >= CARDS) window.__painted = performance.now();
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def report(label: str, value: float, unit: str, target_key: str | None = None) -> None:
    target = TARGETS.get(target_key) if target_key else None
    verdict = "" if target is None else ("  ok" if value <= target else f"  OVER target {target}")
    print(f"{label:<44} {value:>9.1f} {unit}{verdict}", flush=True)


async def cue_latency(server: DevServer, n: int) -> None:
    """Sender's `cue` call -> recipient's notification, beside the floor: a bare signal -> waiting Update."""
    async with play(server, "bench-latency") as a, play(server, "bench-latency") as b:
        bob = await b.name()

        async def arrival() -> float:
            await b.next_cue()
            return time.perf_counter()

        for _ in range(10):  # warm up: worker caches, connections
            await a.call("cue", to=bob, message="warm")
            await b.next_cue()
        samples = []
        for i in range(n):
            got = asyncio.create_task(arrival())
            t0 = time.perf_counter()
            await a.call("cue", to=bob, message=f"m{i}")
            samples.append((await got - t0) * 1000)
            await asyncio.sleep(0.02)  # ~20 msg/s, as NOTES measured the designs
    floor = await signal_to_update(server, n)
    report(f"cue latency p50 ({n} cues)", statistics.median(samples), "ms", "cue p50 ms")
    report(f"cue latency p99 ({n} cues)", pct(samples, 99), "ms", "cue p99 ms")
    report("floor: bare signal -> waiting Update p50", statistics.median(floor), "ms")
    report("cue p50 / floor p50", statistics.median(samples) / statistics.median(floor), "x", "cue/floor")


@workflow.defn(name="BenchFloor", sandboxed=False)
class BenchFloor:
    """The floor's recipient: a signal fills its box; a waiting Update empties it (a session's poll)."""

    def __init__(self) -> None:
        self.box: list[str] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal
    def put(self, text: str) -> None:
        self.box.append(text)

    @workflow.update
    async def take(self) -> list[str]:
        await workflow.wait_condition(lambda: bool(self.box))
        taken, self.box = self.box, []
        return taken


async def signal_to_update(server: DevServer, n: int) -> list[float]:
    """The floor of a push on this server: a signal to a workflow whose waiting Update then answers."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    sender = await Client.connect(server.address)
    receiver = await Client.connect(server.address)  # a session's own connection, as tempo's recipient has
    queue = f"bench-floor-{uuid.uuid4().hex[:8]}"
    async with Worker(receiver, task_queue=queue, workflows=[BenchFloor]):
        handle = await sender.start_workflow("BenchFloor", id=queue, task_queue=queue)
        waiting = receiver.get_workflow_handle(queue)
        samples = []
        for i in range(n + 10):
            poll = asyncio.create_task(waiting.execute_update("take", result_type=list))
            await asyncio.sleep(0.02)  # the update is waiting, as a session's poll is
            t0 = time.perf_counter()
            await handle.signal("put", f"m{i}")
            await poll
            if i >= 10:  # the first ones warm the worker's cache
                samples.append((time.perf_counter() - t0) * 1000)
        await handle.terminate()
    return samples


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
    from tempo_workflows import workflow_id

    client = await tempo.connect(tempo.Config(address=server.address))
    for size in sizes:
        name = f"bench-ens{size}"
        async with play(server, name) as me:
            await me.name()
            await start_players(client, name, size - 1)  # the others: registered workflows, as sessions make them

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


async def broadcast_time(server: DevServer, size: int, conductor: bool) -> None:
    """One `cue` to `all` of `size` players (registered workflows, as sessions make them)."""
    from temporalio.worker import Worker
    from tempo_workflows import PlayerInfo, PlayerInput, PlayerWorkflow, search_attributes, workflow_id

    client = await tempo.connect(tempo.Config(address=server.address))
    # The players' workflows run on a worker of their own, as each runs on its own session's
    # worker in real life, not on the sender's (which would then do 50 players' work per cue).
    worker = Worker(client, task_queue="bench-players", workflows=[PlayerWorkflow])
    running = asyncio.create_task(worker.run())
    name = f"bench-bc{size}{'c' if conductor else ''}"
    env = {"CLAUDE_TEMPO_CONDUCTOR": "true"} if conductor else {}
    async with play(server, name, **env) as me:
        await me.name()
        for i in range(size):
            info = PlayerInfo(ensemble=name, name=f"p{i}", host="bench", started=tempo.utcnow())
            await client.start_workflow(
                PlayerWorkflow.run, PlayerInput(info=info), id=workflow_id(name, info.name),
                task_queue="bench-players", search_attributes=search_attributes(info),
                memo={"info": tempo.dataclasses.asdict(info)},
            )
        deadline = time.monotonic() + 30
        while len((await me.call("ensemble"))["players"]) <= size and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # visibility lists them all
        samples = []
        for i in range(12):
            t0 = time.perf_counter()
            result = await me.call("cue", to="all", message=f"m{i}")
            samples.append((time.perf_counter() - t0) * 1000)
            assert len(result["sent"]) == size, result["not_sent"]
            await asyncio.sleep(0.3)  # as a conductor would between broadcasts
        report(f"cue to all {size} players{' (as conductor)' if conductor else ''}", statistics.median(samples[2:]),
               "ms", "broadcast@50 ms")
        for i in range(size):
            await client.get_workflow_handle(workflow_id(name, f"p{i}")).terminate("bench done")
    await worker.shutdown()
    await running


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


def tempo_program() -> list[str]:
    """`tempo` as a user's hooks run it: the console script beside this Python, else tempo.py."""
    script = Path(sys.executable).with_name("tempo")
    return [str(script)] if script.exists() else [sys.executable, str(ROOT / "tempo.py")]


def run_hook(session_id: str, event: str = "PostToolUse") -> tuple[float, str]:
    import json
    import subprocess

    data = json.dumps({"session_id": session_id, "hook_event_name": event, "transcript_path": ""})
    t0 = time.perf_counter()
    done = subprocess.run([*tempo_program(), "hook"], input=data, capture_output=True, text=True, timeout=30)
    return (time.perf_counter() - t0) * 1000, done.stdout


async def hooks(server: DevServer, runs: int) -> None:
    import subprocess
    import uuid

    sid = str(uuid.uuid4())
    async with play(server, "bench-hooks") as a, play(server, "bench-hooks", CLAUDE_CODE_SESSION_ID=sid,
                                                       CLAUDE_TEMPO_PLAYER_NAME="bob") as bob:
        await bob.call("ensemble")
        idle = [(await asyncio.to_thread(run_hook, sid))[0] for _ in range(runs)]
        report(f"tempo hook, nothing pending (median of {runs})", statistics.median(idle), "ms", "hook ms")
        with_cue = []
        for i in range(max(5, runs // 2)):
            await a.call("cue", to="bob", message=f"m{i}")
            while True:
                took, text = await asyncio.to_thread(run_hook, sid)
                if text:
                    with_cue.append(took)
                    break
        report(f"tempo hook, one cue (median of {len(with_cue)})", statistics.median(with_cue), "ms", "hook ms")
        waiter = subprocess.Popen([*tempo_program(), "hook", "wait"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, text=True)
        waiter.stdin.write(f'{{"session_id": "{sid}", "hook_event_name": "Stop"}}')
        waiter.stdin.close()
        await asyncio.sleep(1)
        rss_kib = int(next(line.split()[1] for line in Path(f"/proc/{waiter.pid}/status").read_text().splitlines()
                           if line.startswith("VmRSS")))
        report("waiter hook memory (RSS while it waits)", rss_kib / 1024, "MiB", "waiter MiB")
    waiter.wait(10)


async def idle_wake(server: DevServer, runs: int) -> None:
    """A real Claude Code idle at its prompt (channels off, tempo's hooks on): cue sent -> model request."""
    import subprocess

    from claude_code import CLAUDE, Interactive, ScriptedModel, claude_home, shown, write_tempo_mcp_json
    from conftest import tempo_env

    if not CLAUDE.exists():
        print(f"idle wake: skipped ({CLAUDE} missing: run `npm ci`)", flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp, ScriptedModel() as model:
        project, home = Path(tmp) / "project", Path(tmp) / "home"
        project.mkdir()
        env = claude_home(home, project, model)
        server_env = tempo_env(server, "bench-wake", home=home, CLAUDE_TEMPO_PLAYER_NAME="carol")
        write_tempo_mcp_json(project, {k: v for k, v in server_env.items() if k != "PATH"})
        subprocess.run([sys.executable, str(ROOT / "tempo.py"), "init", "-d", str(project)], env=env,
                       capture_output=True, check=True, timeout=60)
        async with play(server, "bench-wake") as alice:
            with Interactive(cwd=project, env=env, args=["--allowedTools", "mcp__claude-tempo"]) as session:
                await asyncio.to_thread(session.wait_screen, "? for shortcuts", 60)
                while len((await alice.call("ensemble"))["players"]) < 2:
                    await asyncio.sleep(0.2)
                samples = []
                for i in range(runs):
                    await asyncio.sleep(3)  # idle at the prompt, its waiter armed
                    before, text = len(model.requests()), f"wake up {i}"
                    t0 = time.monotonic()
                    await alice.call("cue", to="carol", message=text)
                    body = await asyncio.to_thread(model.wait_for, lambda b: text in shown(b), 30, True, before)
                    samples.append((body["_at"] - t0) * 1000)
    report(f"idle wake, real Claude Code (median of {runs})", statistics.median(samples), "ms", "idle wake p50 ms")
async def start_players(client, ensemble: str, count: int) -> None:
    """Register `count` players as sessions do (their workflows, no processes), for listing figures."""
    from tempo_workflows import PlayerInfo, PlayerInput, PlayerWorkflow, search_attributes, workflow_id

    for i in range(count):
        info = PlayerInfo(ensemble=ensemble, name=f"p{i}", part="benchmarking", directory="/src/app",
                          host="bench", started=tempo.utcnow())
        await client.start_workflow(
            PlayerWorkflow.run, PlayerInput(info=info), id=workflow_id(ensemble, info.name),
            task_queue="claude-tempo", search_attributes=search_attributes(info),
            memo={"info": tempo.dataclasses.asdict(info)},
        )


async def dashboard_paint(server: DevServer, home: Path, players: int, runs: int) -> None:
    """Navigation start to all cards painted, each run a new tab (the watcher lists the roster afresh)."""
    from tempo_workflows import workflow_id

    name = f"bench-dash{players}"
    client = await tempo.connect(tempo.Config(address=server.address))
    async with play(server, name, CLAUDE_TEMPO_CONDUCTOR="true") as conductor:
        await conductor.name()
        await start_players(client, name, players - 1)
        async with dashboard(server, name, home) as board, chromium(home / "profile-paint") as browser:
            samples = []
            for _ in range(runs + 1):  # the first run warms Chromium up
                tab = await browser.open(board.url, script=PAGE_MARKS.replace("CARDS", str(players)))
                samples.append(await tab.wait_for("window.__painted", timeout=30))
                await tab.close()
                await asyncio.sleep(0.3)  # the last page gone, the watcher idles until the next one
        for i in range(players - 1):
            await client.get_workflow_handle(workflow_id(name, f"p{i}")).terminate("bench done")
    report(f"dashboard first paint, {players} players (median of {runs})", statistics.median(samples[1:]), "ms",
           "dashboard paint@200 ms" if players == 200 else None)


async def dashboard_latency(server: DevServer, home: Path, n: int) -> None:
    """A report's `report` call to its line in the page's feed; a `set_part` call to its card."""
    name = "bench-dashx"
    async with play(server, name, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
            play(server, name, CLAUDE_TEMPO_PLAYER_NAME="worker") as worker, \
            dashboard(server, name, home) as board, chromium(home / "profile-latency") as browser:
        await conductor.name()
        await worker.name()
        tab = await browser.open(board.url, script=PAGE_MARKS.replace("CARDS", "2"))
        await tab.wait_for("window.__painted")
        figures = {"report": [], "set_part": []}
        for i in range(n):
            for tool, arguments in (("report", {"type": "result", "message": f"result-{i}-{uuid.uuid4().hex[:6]}"}),
                                    ("set_part", {"part": f"part-{i}-{uuid.uuid4().hex[:6]}"})):
                want = arguments.get("message") or arguments["part"]
                await tab.eval(f"window.__want = {want!r}")
                t0 = time.time() * 1000
                await worker.call(tool, **arguments)
                figures[tool].append(await tab.wait_for(f"window.__marks[{want!r}]", timeout=10) - t0)
                await asyncio.sleep(0.05)
    report(f"dashboard: report call to the page (median of {n})", statistics.median(figures["report"]), "ms",
           "dashboard exchange ms")
    report(f"dashboard: set_part call to the page (median of {n})", statistics.median(figures["set_part"]), "ms")
async def scheduled_cues(server: DevServer, n: int) -> None:
    """The `schedule` tool's call (validate, create, describe), and a fire's trigger to the target's notification."""
    from temporalio.client import ScheduleOverlapPolicy

    client = await tempo.connect(tempo.Config(address=server.address))
    async with play(server, "bench-schedule") as a, play(server, "bench-schedule") as b:
        bob = await b.name()
        created, fired = [], []
        for i in range(n):
            t0 = time.perf_counter()
            made = await a.call("schedule", name=f"s{i}", to=bob, every="1h", message=f"m{i}")
            created.append((time.perf_counter() - t0) * 1000)
            handle = client.get_schedule_handle(made["schedule_id"])
            await asyncio.sleep(1.01 - time.time() % 1)  # Temporal names a fire's run by its second: one a second
            t0 = time.perf_counter()
            await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
            await b.next_cue()
            fired.append((time.perf_counter() - t0) * 1000)
        for i in range(n):
            await a.call("schedules", action="delete", name=f"s{i}")
    report(f"`schedule` tool call ({n} schedules)", statistics.median(created), "ms")
    report(f"scheduled cue, trigger to notification ({n})", statistics.median(fired), "ms")
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
    await broadcast_time(server, 50, conductor=False)
    await broadcast_time(server, 50, conductor=True)
    await memory(server)
    await hooks(server, 10 if quick else 30)
    await idle_wake(server, 3 if quick else 7)
    with tempfile.TemporaryDirectory() as home:
        await dashboard_paint(server, Path(home), 50 if quick else 200, 3 if quick else 7)
        await dashboard_latency(server, Path(home), 5 if quick else 20)
    await scheduled_cues(server, 3 if quick else 15)
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
