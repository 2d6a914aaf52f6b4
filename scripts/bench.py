"""Measure tempo against a real Temporal dev server and print medians.

Usage:
  bench.py [--cues=<n>] [--quick] [--burst | --board | --core | --codex]

Options:
  --cues=<n>   Cues for the latency figure [default: 200].
  --quick      Smaller runs, for a smoke check.
  --burst      Only the burst figures (many senders into one player, one sender to many) and their floor.
  --board      Only the task board figures (claims under contention, `tasks` at 1 000, the reservation hook).
  --core       Only the push latency beside its floor, the fan-out, the bursts and the hook figures (no real clients).
  --codex      Only the Codex CLI figures (the real binary from node_modules, in tmux, on a scripted loopback model).

Figures: cue delivery latency (sender's `cue` call to the recipient's channel notification)
p50/p99; fan-out throughput; `ensemble` time with 50 and 200 players; a `cue` to `all` of 50; `tempo serve` start to
first `tools/list`; memory per session; `tempo --help` and one command's `--help`; the `schedule` call and a scheduled cue's trigger to notification; `tempo hook` time (nothing pending / one cue / 10 cues) and the
waiter's memory (as its hook command runs it); a cue to its receipt confirmed from the transcript on the hook path;
`up --lineup` of three real Claude Code sessions to all joined and the first cue to a new session; idle wake (cue sent to
the scripted model's request) with the real Claude Code;
the dashboard's first paint with 200 players and the time from a cue to the page (in real
headless Chromium); a permission request relayed from the real Claude Code (model asks -> conductor's
cue, permit -> tool ran); the Copilot bridge's start to ready and cue to model request (the real
Copilot CLI from node_modules on a scripted loopback model); the Codex CLI's `tempo start --agent codex` to
joined and a cue to the model request carrying it, busy (mid-turn, by a hook) and idle (the tmux nudge); the task board (20 claims of one task
at once, `tasks` with 1 000 tasks, the PreToolUse hook's answer with 50 reservations). The sessions are real `tempo serve` processes driven by the MCP SDK's stdio
client (the test harness in tests/conftest.py, reused here).
"""

import asyncio
import contextlib
import functools
import importlib.util
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from temporalio import workflow  # noqa: E402

import tempo  # noqa: E402
from conftest import DevServer, chromium, dashboard, flagged_serve, free_port, play  # noqa: E402

TARGETS = {  # from the issue: bench figures, never timed tests
    "cue p50 ms": 25,
    "cue p99 ms": 100,
    "ensemble@200 ms": 250,
    "serve ready s": 1.5,
    "hook ms": 50,
    "hook@10 ms": 50,
    "waiter MiB": 15,
    "idle wake p50 ms": 500,
    "dashboard paint@200 ms": 1000,
    "dashboard exchange ms": 500,
    "broadcast@50 ms": 250,
    "cue/floor": 1.2,
    "first cue to a new session ms": 500,
    "burst 5x200 s": 20,
    "tasks@1000 ms": 100,
    "reservation hook@50 ms": 50,
    "help ms": 150,
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


# -- bursts: many senders into one player, one sender to many; a bare Temporal signal floor beside -----

@workflow.defn(sandboxed=False)
class FloorWorkflow:
    """The floor: a bare workflow a signal puts a message into, and a long-poll Update hands it out."""

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.signal
    def cue(self, text: str) -> None:
        self.pending.append(text)

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.update
    async def poll(self, taken: int) -> list[str]:
        del self.pending[:taken]  # acknowledged by the next poll, as a session acknowledges its cues
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(lambda: bool(self.pending) or self.done, timeout=60)
        return list(self.pending)


class FloorPlayer:
    """One floor workflow and the loop that drains it; `got` in arrival order."""

    def __init__(self, client, wid: str) -> None:
        self.client, self.wid, self.got = client, wid, []
        self.arrived = asyncio.Event()

    async def start(self, queue: str) -> "FloorPlayer":
        self.handle = await self.client.start_workflow(FloorWorkflow.run, id=self.wid, task_queue=queue)
        self.task = asyncio.create_task(self.drain())
        return self

    async def drain(self) -> None:
        taken = 0
        while True:
            try:
                batch = await self.handle.execute_update(FloorWorkflow.poll, taken)
            except Exception:  # stopped
                return
            self.got += batch
            taken = len(batch)
            self.arrived.set()

    async def until(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            self.arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), max(0.01, deadline - time.monotonic()))

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(Exception):
            await self.handle.signal(FloorWorkflow.finish)


def burst_line(label: str, sent: float, delivered: float | None, got: list, expected: int, floor: float | None,
               errors: int, target: str | None = None) -> None:
    dupes = len(got) - len(set(got))
    ratio = f"  {delivered / floor:.1f}x floor" if floor and delivered else ""
    whole = f"{len(set(got))}/{expected}"
    took = f"{delivered:.1f} s" if delivered is not None else "not all delivered"
    verdict = "" if not target else ("  ok" if delivered is not None and delivered <= TARGETS[target] else f"  OVER target {TARGETS[target]} s")
    print(f"{label:<44} sent in {sent:.1f} s, {whole} delivered, {took}, {dupes} dupes, {errors} errors{ratio}{verdict}",
          flush=True)


async def burst_floor(server: DevServer, senders: int, per_sender: int, recipients: int, rounds: int) -> tuple[float, float]:
    """The floor of both bursts: bare signals into a bare long-polled workflow (seconds, cues/s)."""
    from temporalio.worker import Worker

    client = await tempo.connect(tempo.Config(address=server.address))
    queue = f"bench-floor-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=[FloorWorkflow]):
        one = await FloorPlayer(client, f"{queue}-one").start(queue)
        t0 = time.perf_counter()

        async def send(k: int) -> None:
            for i in range(per_sender):
                await one.handle.signal(FloorWorkflow.cue, f"s{k}-{i}")

        await asyncio.gather(*(send(k) for k in range(senders)))
        sent = time.perf_counter() - t0
        await one.until(senders * per_sender, 120)
        delivered = time.perf_counter() - t0
        burst_line(f"floor: {senders} senders x {per_sender} signals", sent, delivered, one.got, senders * per_sender, None, 0)
        await one.stop()
        many = [await FloorPlayer(client, f"{queue}-p{i}").start(queue) for i in range(recipients)]
        t0 = time.perf_counter()
        for r in range(rounds):
            for p in many:
                await p.handle.signal(FloorWorkflow.cue, f"m{r}")
        await asyncio.gather(*(p.until(rounds, 60) for p in many))
        rate = recipients * rounds / (time.perf_counter() - t0)
        report(f"floor: one by one to {recipients} workflows", rate, "cues/s")
        for p in many:
            await p.stop()
    return delivered, rate


async def burst(server: DevServer, senders: int, per_sender: int, floor: float, label: str = "", *,
                listening: bool = False, command: tuple | None = None, **env: str) -> None:
    """`senders` sessions each cue one player `per_sender` times, one call at a time; all must arrive once, in order.

    The player takes its cues as they are pushed, or (`listening`) by calling `listen` every half second,
    as a model whose channel is off would; what was pushed but never confirmed is read by `listen` after."""
    ensemble = f"bench-burst-{uuid.uuid4().hex[:6]}"
    async with contextlib.AsyncExitStack() as stack:
        target = await stack.enter_async_context(play(server, ensemble, command=command, **env))
        name = await target.name()
        cuers = [await stack.enter_async_context(play(server, ensemble)) for _ in range(senders)]
        errors: list[str] = []
        got: list[str] = []
        answers: list[float] = []  # how long each `listen` took to answer

        async def send(k: int, who) -> None:
            for i in range(per_sender):
                try:
                    await who.call("cue", to=name, message=f"s{k}-{i}")
                except Exception as e:
                    errors.append(str(e))

        async def listen() -> list[str]:
            texts = []
            while True:
                t1 = time.perf_counter()
                page = await target.call("listen")
                answers.append(time.perf_counter() - t1)
                texts += [m["text"] for m in page["messages"]]
                if not page.get("more"):
                    return texts

        async def collect() -> None:
            while True:
                if listening:
                    got.extend(await listen())
                    await asyncio.sleep(0.5)
                else:
                    got.append((await target.notifications.get())["content"])

        collecting = asyncio.create_task(collect())
        t0 = time.perf_counter()
        await asyncio.gather(*(send(k, who) for k, who in enumerate(cuers)))
        sent = time.perf_counter() - t0
        expected = senders * per_sender - len(errors)
        deadline = time.monotonic() + 120
        while len(set(got)) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        delivered = time.perf_counter() - t0 if len(set(got)) >= expected else None
        collecting.cancel()
        label = f"burst: {senders} senders x {per_sender} cues" + (f" ({label})" if label else "")
        burst_line(label, sent, delivered, got, senders * per_sender, floor, len(errors), "burst 5x200 s")
        if env and not listening:  # pushed, never confirmed: still unread, `listen` has them all
            read = await listen()
            print(f"{'  then listen':<44} {len(read)} unread ({len(set(read) - set(got))} never pushed); "
                  f"missing after it: {expected - len(set(got) | set(read))}", flush=True)
        if answers:
            print(f"{'  listen answered in':<44} {statistics.median(answers):.2f} s median, {max(answers):.2f} s at most "
                  f"({len(answers)} calls)", flush=True)
        order = all([g for g in got if g.startswith(f"s{k}-")] == sorted((g for g in got if g.startswith(f"s{k}-")),
                    key=lambda g: int(g.split("-")[1])) for k in range(senders))
        print(f"{'  order per sender kept':<44} {order}", flush=True)


async def one_by_one(server: DevServer, recipients: int, rounds: int, floor: float) -> None:
    """One sender cues `recipients` players one call at a time, `rounds` times over; throughput to the last arrival."""
    ensemble = f"bench-onebyone-{uuid.uuid4().hex[:6]}"
    async with contextlib.AsyncExitStack() as stack:
        sender = await stack.enter_async_context(play(server, ensemble))
        players = []
        for _ in range(recipients):
            players.append(await stack.enter_async_context(play(server, ensemble)))
        names = [await p.name() for p in players]

        async def drain(p) -> None:
            for _ in range(rounds):
                await p.next_cue(timeout=120)

        drains = [asyncio.create_task(drain(p)) for p in players]
        t0 = time.perf_counter()
        for r in range(rounds):
            for name in names:
                await sender.call("cue", to=name, message=f"m{r}")
        sent = time.perf_counter() - t0
        await asyncio.gather(*drains)
        elapsed = time.perf_counter() - t0
    total = recipients * rounds
    print(f"{f'one sender to {recipients} players, one by one':<44} {total / elapsed:>9.1f} cues/s "
          f"(calls took {sent:.1f} s; {total / elapsed / floor:.2f}x the floor's rate)"
          f"{'  ok' if total / elapsed >= 100 else '  UNDER target 100 cues/s'}", flush=True)


async def bursts(server: DevServer, quick: bool) -> None:
    senders, per_sender = (5, 40) if quick else (5, 200)
    recipients, rounds = (10, 4) if quick else (50, 4)
    floor, rate = await burst_floor(server, senders, per_sender, recipients, rounds)
    await burst(server, senders, per_sender, floor)
    # A Claude Code session: its channel unconfirmed (pushed, never seen), or known off (hooks and `listen` only).
    await burst(server, senders, per_sender, floor, "channel unconfirmed", command=flagged_serve(),
                CLAUDE_CODE_SESSION_ID=str(uuid.uuid4()))
    await burst(server, senders, per_sender, floor, "channel off, read by listen", listening=True,
                CLAUDE_CODE_SESSION_ID=str(uuid.uuid4()))
    await one_by_one(server, recipients, rounds, rate)


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


@functools.cache
def tempo_program() -> list[str]:
    """`tempo` as a user's hooks run it: the console script beside this Python, else tempo.py.

    Its bytecode is cached first, as `pip install` does (PYTHONDONTWRITEBYTECODE would otherwise make
    every timed start compile the whole of tempo.py again: ~100 ms that no user pays); once, not inside
    each timed call (the callers start their clocks before they ask for the program)."""
    import py_compile

    for module in ("tempo.py", "tempo_workflows.py"):
        py_compile.compile(str(ROOT / module), cfile=importlib.util.cache_from_source(str(ROOT / module)))
    script = Path(sys.executable).with_name("tempo")
    return [str(script)] if script.exists() else [sys.executable, str(ROOT / "tempo.py")]


def run_hook(session_id: str, event: str = "PostToolUse", transcript: str = "") -> tuple[float, str]:
    import json
    import subprocess

    data = json.dumps({"session_id": session_id, "hook_event_name": event, "transcript_path": transcript})
    t0 = time.perf_counter()
    done = subprocess.run([*tempo_program(), "hook"], input=data, capture_output=True, text=True, timeout=30)
    return (time.perf_counter() - t0) * 1000, done.stdout


def cli_start(runs: int) -> None:
    """`tempo --help` (the commands) and `tempo status --help` (one command's own usage), beside the floor: Python itself."""
    import subprocess

    def took(argv: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, timeout=30, check=True)
        return (time.perf_counter() - t0) * 1000

    for label, argv in (("tempo --help", [*tempo_program(), "--help"]), ("tempo status --help", [*tempo_program(), "status", "--help"])):
        report(f"{label} (median of {runs})", statistics.median(took(argv) for _ in range(runs)), "ms", "help ms")
    report(f"python -c pass, the floor (median of {runs})", statistics.median(took([sys.executable, "-c", "pass"]) for _ in range(runs)), "ms")


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
        # The waiter as Claude Code launches it: the command tempo's hooks hold, run by a shell, for a
        # pip-installed tempo (its console script) and for a checkout (python tempo.py: compiled at each start).
        for label, program in (("installed", tempo_program()), ("checkout", [sys.executable, str(ROOT / "tempo.py")])):
            command = " ".join(tempo.shell_word(w) for w in program) + " hook wait"
            waiter = subprocess.Popen(["/bin/sh", "-c", f"exec {command}"], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
            waiter.stdin.write(f'{{"session_id": "{sid}", "hook_event_name": "Stop"}}')
            waiter.stdin.close()
            await asyncio.sleep(2)  # connected to bob's serve, waiting for a cue
            rss_kib = int(next(line.split()[1] for line in Path(f"/proc/{waiter.pid}/status").read_text().splitlines()
                               if line.startswith("VmRSS")))
            report(f"waiter hook memory, {label} (RSS while it waits)", rss_kib / 1024, "MiB",
                   "waiter MiB" if label == "installed" else None)
            await a.call("cue", to="bob", message="wake the waiter")  # it answers and exits
            waiter.wait(30)


async def hook_confirm(server: DevServer, runs: int) -> None:
    """The hook path: a hook's answer with 10 cues pending, and a cue's trip to a receipt the transcript confirms
    (the transcript written here as Claude Code writes it: what the hook showed, then the model's answer)."""
    import json
    import uuid

    from test_hooks import Transcript

    sid = str(uuid.uuid4())
    with tempfile.TemporaryDirectory() as tmp:
        transcript = Transcript(Path(tmp) / "t.jsonl")
        async with play(server, "bench-confirm") as a, play(server, "bench-confirm", CLAUDE_CODE_SESSION_ID=sid,
                                                            CLAUDE_TEMPO_PLAYER_NAME="bob") as bob:
            await bob.call("ensemble")
            answers = []
            for _ in range(runs):
                for i in range(10):
                    await a.call("cue", to="bob", message=f"pending {i}")
                while next(p for p in (await a.call("ensemble"))["players"] if p["name"] == "bob")["unread"] < 10:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.2)  # all ten have reached bob's serve
                took, text = await asyncio.to_thread(run_hook, sid, "PostToolUse", str(transcript))
                answers.append(took)
                transcript.context(json.loads(text)["hookSpecificOutput"]["additionalContext"]).answer()
                await asyncio.sleep(0.5)  # confirmed: the next round starts from nothing unread
            report(f"tempo hook, 10 cues pending (median of {runs})", statistics.median(answers), "ms", "hook@10 ms")
            trips = []
            for i in range(runs):
                t0 = time.perf_counter()
                sent = await a.call("cue", to="bob", message=f"confirm me {i}")
                while not (text := (await asyncio.to_thread(run_hook, sid, "PostToolUse", str(transcript)))[1]):
                    pass
                transcript.context(json.loads(text)["hookSpecificOutput"]["additionalContext"]).answer()
                while (await a.call("receipts", message_ids=[sent["message_id"]]))["receipts"][0]["state"] != "seen":
                    await asyncio.sleep(0.01)
                trips.append((time.perf_counter() - t0) * 1000)
            report(f"cue to confirmed receipt, hook path (median of {runs})", statistics.median(trips), "ms")


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
async def lineup_up(server: DevServer) -> None:
    """`tempo up --lineup` of three real Claude Code sessions in tmux (scripted model) to all joined; then the
    first cue to one of them (a session that has not had a cue yet): sent -> its model's request."""
    import json
    import os
    import shutil
    import subprocess

    from claude_code import CLAUDE, ScriptedModel, claude_home, shown

    if not CLAUDE.exists() or not shutil.which("tmux"):
        print("up --lineup: skipped (needs tmux and the pinned Claude Code: `npm ci`)", flush=True)
        return
    # Claude Code may still write into its HOME as its tmux server goes: cleaning up must not fail on that.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp, ScriptedModel() as model:
        tmp_path = Path(tmp)
        shop, home, bindir, sockets = tmp_path / "shop", tmp_path / "home", tmp_path / "bin", tmp_path / "tmux"
        for d in (shop / "api", shop / "web", bindir, sockets):
            d.mkdir(parents=True)
        (bindir / "claude").symlink_to(CLAUDE)
        env = claude_home(home, shop, model)
        subprocess.run(["git", "init", "-q", str(shop)], check=True)  # a team's repository, trusted once, nothing approved
        (home / ".claude.json").write_text(json.dumps({**json.loads((home / ".claude.json").read_text()),
                                                       "projects": {str(shop): {"hasTrustDialogAccepted": True}}}))
        (home / ".bash_profile").write_text(f'export PATH="{bindir}:$PATH"\n')
        ensemble = f"bench-up-{uuid.uuid4().hex[:6]}"
        (shop / "team.toml").write_text(f'ensemble = "{ensemble}"\n[conductor]\ndirectory = "."\n'
                                        '[[player]]\nname = "api"\ndirectory = "api"\n[[player]]\nname = "ui"\ndirectory = "web"\n')
        env.update({"SHELL": "/bin/bash", "TEMPORAL_ADDRESS": server.address, "CLAUDE_TEMPO_HOME": str(home / ".tempo"),
                    "CLAUDE_TEMPO_TERMINAL": "tmux", "TMUX_TMPDIR": str(sockets), "CLAUDE_TEMPO_RECRUIT_TIMEOUT": "120",
                    "MCP_TIMEOUT": "120000", "CLAUDE_TEMPO_LOG": "WARNING"})
        try:
            t0 = time.monotonic()
            up = await asyncio.to_thread(subprocess.run, [sys.executable, str(ROOT / "tempo.py"), "up", "--lineup",
                                                          str(shop / "team.toml")], env=env, capture_output=True, text=True, timeout=600)
            took = time.monotonic() - t0
            if up.returncode:
                print(f"up --lineup: failed\n{up.stdout}{up.stderr}", flush=True)
                return
            report("up --lineup, 3 real Claude Code sessions, to all joined", took, "s")
            async with play(server, ensemble) as alice:
                await asyncio.sleep(5)  # the sessions settle at their prompts
                before, text = len(model.requests()), f"first cue {uuid.uuid4().hex[:6]}"
                t0 = time.monotonic()
                await alice.call("cue", to="api", message=text)
                body = await asyncio.to_thread(model.wait_for, lambda b: text in shown(b), 60, True, before)
                report("first cue to a new session (sent -> model)", (body["_at"] - t0) * 1000, "ms",
                       "first cue to a new session ms")
        finally:
            subprocess.run(["tmux", "kill-server"], env={**os.environ, "TMUX_TMPDIR": str(sockets)}, capture_output=True)


async def permission_relay(server: DevServer, runs: int) -> None:
    """A real Claude Code asks for Bash (no rule covers it): the model's answer -> the conductor's permission cue;
    the conductor's `permit` call -> the command has run (its file exists)."""
    import subprocess

    from claude_code import CLAUDE, Interactive, ScriptedModel, calls, claude_home, tool_use, write_tempo_mcp_json
    from conftest import tempo_env

    if not CLAUDE.exists():
        print(f"permission relay: skipped ({CLAUDE} missing: run `npm ci`)", flush=True)
        return

    def reply(body):
        done = calls(body, "Bash")
        return [tool_use("Bash", {"command": f"touch P{done}", "description": "bench"})] if done < runs else ["done"]

    with tempfile.TemporaryDirectory() as tmp, ScriptedModel(reply) as model:
        project, home = Path(tmp) / "project", Path(tmp) / "home"
        project.mkdir()
        env = {**claude_home(home, project, model), "MCP_CONNECT_TIMEOUT_MS": "90000", "MCP_TIMEOUT": "90000"}
        server_env = tempo_env(server, "bench-permit", home=home, CLAUDE_TEMPO_PLAYER_NAME="carol")
        write_tempo_mcp_json(project, {k: v for k, v in server_env.items() if k != "PATH"})
        subprocess.run([sys.executable, str(ROOT / "tempo.py"), "init", "-d", str(project)], env=env,
                       capture_output=True, check=True, timeout=60)
        notified, ran = [], []
        async with play(server, "bench-permit", CLAUDE_TEMPO_CONDUCTOR="true") as conductor:
            with Interactive(cwd=project, env=env) as session:
                await asyncio.to_thread(session.wait_screen, "? for shortcuts", 60)
                while len((await conductor.call("ensemble"))["players"]) < 2:
                    await asyncio.sleep(0.2)
                await asyncio.to_thread(session.type, "go")
                for i in range(runs):
                    while True:
                        cue = await conductor.next_cue(timeout=60)
                        if cue["meta"]["kind"] == "permission":
                            break
                    got = time.monotonic()
                    asked = next(b for b in model.requests() if calls(b, "Bash") == i)  # answered with `touch P{i}`
                    notified.append((got - asked["_at"]) * 1000)
                    t0 = time.monotonic()
                    await conductor.call("permit", request_id=cue["meta"]["message_id"], decision="allow")
                    while not (project / f"P{i}").exists():
                        await asyncio.sleep(0.005)
                    ran.append((time.monotonic() - t0) * 1000)
    report(f"permission: model asks -> conductor's cue (median of {runs})", statistics.median(notified), "ms")
    report(f"permission: permit call -> the tool has run (median of {runs})", statistics.median(ran), "ms")


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


async def codex_player(server: DevServer, starts: int, cues: int) -> None:
    """The real Codex CLI in tmux (private socket) as `tempo start --agent codex` runs it, on a scripted model."""
    import json
    import os
    import shutil
    import subprocess

    from codex_cli import CODEX, ScriptedResponses, codex_home, shell, shown, text
    from conftest import tempo_env, tools_path

    if not CODEX.exists():
        print("codex: skipped (npm ci installs the Codex CLI into node_modules)", flush=True)
        return
    shells: list[float] = []  # when the model started each 3 s shell command

    def reply(body):  # a cue saying "work": a 3 s shell command (the busy cue comes in meanwhile); else done
        items = body["input"]
        last = max((k for k, item in enumerate(items) if ": work" in json.dumps(item)), default=-1)
        if last >= 0 and not any(item.get("type") == "function_call" for item in items[last:]):
            shells.append(time.monotonic())
            return [shell("sleep 3")]
        return [text("ok")]

    joined, busy, idle, typed, queued, bare = [], [], [], [], [], []
    tmux_dir = tempfile.mkdtemp(prefix="tb-")
    with ScriptedResponses(reply) as model, tempfile.TemporaryDirectory() as tmp:
        bindir = Path(tmp) / "bin"
        bindir.mkdir()
        (bindir / "codex").symlink_to(CODEX)
        ensemble = f"bench-codex-{uuid.uuid4().hex[:6]}"

        def env_for(work: Path) -> dict:
            env = {**os.environ, **codex_home(Path(tmp) / "home", work, model),
                   **tempo_env(server, ensemble, home=Path(tmp) / "home"),
                   "TMUX_TMPDIR": tmux_dir, "PATH": f"{bindir}{os.pathsep}{tools_path()}"}
            env.pop("TMUX", None)
            return env

        def tmux(*args, env=None):
            return subprocess.run(["tmux", *args], env=env or {**os.environ, "TMUX_TMPDIR": tmux_dir}, capture_output=True, text=True)

        async def reached(marker: str, t0: float, pane: str = "") -> float:
            """Seconds from t0 until a model request carries `marker` (fails after 90 s, with the pane's screen)."""
            while not any(marker in shown(b) for b in model.requests()):
                if time.monotonic() - t0 > 90:
                    raise RuntimeError(f"{marker!r} never reached the model:\n" + tmux("capture-pane", "-p", "-t", pane).stdout)
                await asyncio.sleep(0.01)
            return next(t for b, t in zip(model.requests(), model.times) if marker in shown(b)) - t0

        async def settled() -> None:
            while not rollout_idle():
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)

        def rollout_idle() -> bool:
            text_ = "".join(f.read_text() for f in (Path(tmp) / "home" / ".codex").glob("sessions/**/rollout-*.jsonl"))
            return text_.count('"type":"task_started"') == text_.count('"type":"task_complete"')

        try:
            async with play(server, ensemble) as alice:
                for i in range(starts):
                    work = Path(tmp) / f"w{i}"
                    work.mkdir()
                    t0 = time.monotonic()
                    tmux("new-session", "-d", "-s", f"c{i}", "-x", "200", "-y", "50", sys.executable, str(ROOT / "tempo.py"), "start",
                         "--agent", "codex", "-n", f"codex-{i}", "-d", str(work), env=env_for(work))
                    while f"codex-{i}" not in [p["name"] for p in (await alice.call("ensemble"))["players"]]:
                        await asyncio.sleep(0.1)
                    joined.append(time.monotonic() - t0)
                    if i < starts - 1:
                        tmux("kill-session", "-t", f"c{i}")
                last = f"codex-{starts - 1}"
                await asyncio.sleep(5)  # its hooks have run once (SessionStart): it idles at its prompt
                for i in range(cues):
                    while not rollout_idle():
                        await asyncio.sleep(0.1)
                    t0 = time.monotonic()
                    sent = await alice.call("cue", to=last, message=f"idle {i}: work")
                    while not any(sent["message_id"] in shown(b) for b in model.requests()):
                        await asyncio.sleep(0.01)
                    at = next(t for b, t in zip(model.requests(), model.times) if sent["message_id"] in shown(b))
                    idle.append(at - t0)
                    while len(shells) <= i:
                        await asyncio.sleep(0.01)  # its shell command runs now: the model is busy
                    t0 = time.monotonic()
                    sent = await alice.call("cue", to=last, message=f"busy {i}")
                    while not any(sent["message_id"] in shown(b) for b in model.requests()):
                        await asyncio.sleep(0.01)
                    at = next(t for b, t in zip(model.requests(), model.times) if sent["message_id"] in shown(b))
                    busy.append(at - t0)
                    # The floor: a plain message typed the same way at the same idle prompt, no tempo.
                    await settled()
                    t0 = time.monotonic()
                    for keys in (["-l", f"typed {i}"], ["Enter"]):
                        tmux("send-keys", "-t", f"c{starts - 1}", *keys)
                        await asyncio.sleep(0.5)  # as tempo types its nudge
                    typed.append(await reached(f"typed {i}", t0, f"c{starts - 1}"))
                # Outside tmux (TMUX and TMUX_PANE taken out of its environment): woken through `codex queue`.
                work = Path(tmp) / "q"
                work.mkdir()
                tmux("kill-session", "-t", f"c{starts - 1}")  # the server ends with it: q's gets q's environment
                tmux("new-session", "-d", "-s", "q", "-x", "200", "-y", "50", "env", "-u", "TMUX", "-u", "TMUX_PANE", sys.executable,
                     str(ROOT / "tempo.py"), "start", "--agent", "codex", "-n", "q", "-d", str(work), env=env_for(work))
                t0 = time.monotonic()
                while "q" not in [p["name"] for p in (await alice.call("ensemble"))["players"]]:
                    if time.monotonic() - t0 > 90:
                        raise RuntimeError("q never joined:\n" + tmux("capture-pane", "-p", "-t", "q").stdout)
                    await asyncio.sleep(0.1)
                await asyncio.sleep(3)
                for keys in (["-l", "first turn"], ["Enter"]):  # its hooks name its thread from its first turn on
                    tmux("send-keys", "-t", "q", *keys)
                    await asyncio.sleep(0.5)
                await reached("first turn", time.monotonic(), "q")
                for i in range(cues):
                    await settled()
                    t0 = time.monotonic()
                    sent = await alice.call("cue", to="q", message=f"queued {i}")
                    queued.append(await reached(sent["message_id"], t0, "q"))
                    await settled()
                    rollout = next(f for f in (Path(tmp) / "home" / ".codex").glob("sessions/**/rollout-*.jsonl") if "first turn" in f.read_text())
                    thread = json.loads(rollout.read_text().splitlines()[0])["payload"]["id"]
                    t0 = time.monotonic()
                    await asyncio.to_thread(subprocess.run, [str(CODEX), "queue", "--thread", thread, "--message", f"bare {i}"],
                                            env=env_for(work), capture_output=True, timeout=60)
                    bare.append(await reached(f"bare {i}", t0, "q"))
        finally:
            tmux("kill-server")
            shutil.rmtree(tmux_dir, ignore_errors=True)
    report(f"codex: `tempo start --agent codex` to joined (median of {starts})", statistics.median(joined), "s")
    report(f"codex: cue to a busy Codex's model request (sent as a 3 s tool starts; PostToolUse hook; median of {cues})",
           statistics.median(busy), "s")
    report(f"codex: cue to an idle Codex's model request (tmux nudge, median of {cues})", statistics.median(idle), "s")
    report(f"codex: floor: a plain message typed the same way at that prompt to its model request (median of {cues})",
           statistics.median(typed), "s")
    report(f"codex: cue to an idle Codex outside tmux, its model request (`codex queue` nudge, median of {cues})",
           statistics.median(queued), "s")
    report(f"codex: floor: a bare `codex queue` message to that session's model request (median of {cues})",
           statistics.median(bare), "s")


async def claims(server: DevServer, rounds: int, where: str) -> None:
    """One claim alone (the floor), then 20 and 8 claims of one task at once: the winner's answer and the last answer."""
    from tempo_workflows import BoardWorkflow, Task, TaskAdd, TaskClaim

    ensemble = f"bench-claims-{uuid.uuid4().hex[:6]}"
    async with play(server, ensemble, CLAUDE_TEMPO_PLAYER_NAME="worker") as worker:  # a session's worker runs the board
        await worker.call("ensemble")
        cfg = tempo.Config(address=server.address, ensemble=ensemble)
        client = await tempo.connect(cfg)

        async def claim(by: str, task_id: str, t0: float) -> tuple[float, bool]:
            try:
                await tempo._board_update(client, cfg, BoardWorkflow.claim, TaskClaim(by=by, id=task_id))
                return (time.perf_counter() - t0) * 1000, True
            except tempo.TempoError:
                return (time.perf_counter() - t0) * 1000, False

        figures: dict[str, list[float]] = {}
        for i in range(rounds):
            ids = [t.id for t in await tempo._board_update(client, cfg, BoardWorkflow.add, TaskAdd(by="bench", tasks=[
                Task(id="", title=f"a{i}"), Task(id="", title=f"r{i}"), Task(id="", title=f"u{i}")]))]
            figures.setdefault("alone", []).append((await claim("solo", ids[0], time.perf_counter()))[0])
            for n, task_id in ((20, ids[1]), (8, ids[2])):
                t0 = time.perf_counter()
                answers = await asyncio.gather(*(claim(f"p{k}", task_id, t0) for k in range(n)))
                won = [t for t, ok in answers if ok]
                assert len(won) == 1, answers
                figures.setdefault(f"{n} winner", []).append(won[0])
                figures.setdefault(f"{n} all", []).append(max(t for t, _ in answers))
    report(f"task_claim alone, the floor, {where} (median of {rounds})", statistics.median(figures["alone"]), "ms")
    for n in (20, 8):
        report(f"task_claim, {n} at once, {where}: winner (median of {rounds})", statistics.median(figures[f"{n} winner"]), "ms")
        report(f"task_claim, {n} at once, {where}: all {n} answered (median of {rounds})", statistics.median(figures[f"{n} all"]), "ms")


async def board(server: DevServer, rounds: int, hook_runs: int) -> None:
    """The task board: 20 claims of one task at once (on tempo's dev server and at Temporal's default limit), `tasks`
    with 1 000 on the board, PreToolUse with 50 reservations and how soon another player's reserve binds it."""
    import json
    import subprocess

    from tempo_workflows import BoardWorkflow, Task, TaskAdd

    ensemble, sid = f"bench-board-{uuid.uuid4().hex[:6]}", str(uuid.uuid4())
    with tempfile.TemporaryDirectory() as repo:
        subprocess.run(["git", "init", "-q", repo], check=True)
        async with play(server, ensemble, cwd=repo, CLAUDE_TEMPO_PLAYER_NAME="holder") as holder, \
                play(server, ensemble, cwd=repo, CLAUDE_CODE_SESSION_ID=sid, CLAUDE_TEMPO_PLAYER_NAME="editor") as editor:
            await editor.call("ensemble")
            cfg = tempo.Config(address=server.address, ensemble=ensemble)
            client = await tempo.connect(cfg)

            await claims(server, rounds, "tempo's dev server")
            # The same beside a dev server at Temporal's default limit (a server tempo does not start)
            with tempfile.TemporaryDirectory() as tmp:
                argv = tempo._dev_server_argv(tempo.temporal_binary(), "127.0.0.1", port := free_port(), str(Path(tmp) / "d.db"),
                                             http_port=free_port(), metrics_port=free_port())
                at = argv.index("--dynamic-config-value")
                default = DevServer(address=f"127.0.0.1:{port}", process=None, db="", argv=argv[:at] + argv[at + 2:])
                await asyncio.to_thread(default.start)
                try:
                    await claims(default, rounds, "Temporal's default limit (10 in flight)")
                finally:
                    await asyncio.to_thread(default.stop)

            for start in range(0, 1000, 100):
                await tempo._board_update(client, cfg, BoardWorkflow.add, TaskAdd(by="bench", tasks=[
                    Task(id="", title=f"task {n}", details="x" * 80) for n in range(start, start + 100)]))
            took, floor = [], []
            for _ in range(hook_runs):  # side by side: the load of this shared machine weighs on both alike
                t0 = time.perf_counter()
                listed = await holder.call("tasks")
                took.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                await holder.call("reservations")
                floor.append((time.perf_counter() - t0) * 1000)
            assert (listed["total"], len(listed["tasks"])) == (1000, tempo.TASKS_PAGE), (listed["total"], len(listed["tasks"]))
            report(f"tasks with 1 000 on the board, first page (median of {hook_runs})", statistics.median(took), "ms", "tasks@1000 ms")
            report(f"reservations, one board query of none, the floor (median of {hook_runs})", statistics.median(floor), "ms")
            whole = []
            for _ in range(max(3, hook_runs // 3)):
                t0 = time.perf_counter()
                assert len(await tempo.board_tasks(client, ensemble)) == 1000
                whole.append((time.perf_counter() - t0) * 1000)
            report(f"all 1 000 tasks in one query, as `tempo tasks` asks (median of {len(whole)})", statistics.median(whole), "ms")

            await holder.call("reserve", paths=[f"src/mod{n}.py" for n in range(49)] + ["docs/**"], reason="bench")
            data = {"session_id": sid, "hook_event_name": "PreToolUse", "transcript_path": "", "cwd": repo,
                    "tool_name": "Edit", "tool_input": {"file_path": f"{repo}/docs/a.md"}}
            while '"deny"' not in await asyncio.to_thread(ask_hook, sid, data):  # the board's push has come (measured below)
                await asyncio.sleep(0.01)

            def edit_hook() -> tuple[float, str]:
                t0 = time.perf_counter()
                done = subprocess.run([*tempo_program(), "hook"], input=json.dumps(data), capture_output=True, text=True, timeout=30)
                return (time.perf_counter() - t0) * 1000, done.stdout

            answers, floor = [], []
            for _ in range(hook_runs):  # interleaved: the load of this shared machine weighs on both alike
                answers.append(await asyncio.to_thread(edit_hook))
                floor.append((await asyncio.to_thread(run_hook, sid))[0])
            assert all('"deny"' in text for _, text in answers), answers[-1]
            report(f"PreToolUse hook, 50 reservations: deny (median of {hook_runs})", statistics.median(t for t, _ in answers),
                   "ms", "reservation hook@50 ms")
            report(f"tempo hook with nothing to say, the floor (median of {hook_runs})", statistics.median(floor), "ms")
            print(f"  reservation hook / floor: {statistics.median(t for t, _ in answers) / statistics.median(floor):.2f}", flush=True)
            # How soon another player's reserve (and release) binds this session's hook: the board's push
            # through the editor's poll, then its read; asked over the hook's socket (~1 ms a try), not a process.
            lib = {**data, "tool_input": {"file_path": f"{repo}/lib/x.py"}}
            taken, freed = [], []
            for _ in range(max(5, hook_runs // 3)):
                await holder.call("reserve", paths=["lib/x.py"], reason="bench")
                t0 = time.perf_counter()
                while '"deny"' not in await asyncio.to_thread(ask_hook, sid, lib):
                    await asyncio.sleep(0.001)
                taken.append((time.perf_counter() - t0) * 1000)
                await holder.call("release", paths=["lib/x.py"])
                t0 = time.perf_counter()
                while '"deny"' in await asyncio.to_thread(ask_hook, sid, lib):
                    await asyncio.sleep(0.001)
                freed.append((time.perf_counter() - t0) * 1000)
            report(f"another player's reserve to this hook denying, the board's push (median of {len(taken)}; max {max(taken):.0f})",
                   statistics.median(taken), "ms")
            report(f"its release to this hook allowing (median of {len(freed)}; max {max(freed):.0f})", statistics.median(freed), "ms")


def ask_hook(session_id: str, data: dict) -> str:
    """One hook's answer from the session's serve over its socket, as `tempo hook` asks (without a process)."""
    import json

    sock = tempo._open_endpoint(tempo._endpoint_keys(session_id), 1.0)
    with sock:
        sock.sendall(json.dumps({"op": "hook", "input": {**data, "session_id": session_id}}).encode() + b"\n")
        return json.loads(sock.makefile("rb").readline() or b"{}").get("stdout", "")


async def run(args, server: DevServer) -> None:
    print(f"tempo {tempo.__version__} bench against a dev server at {server.address}", flush=True)
    quick = args["--quick"]
    if args["--burst"]:
        await bursts(server, quick)
        return
    if args["--board"]:
        await board(server, 3 if quick else 10, 10 if quick else 30)
        return
    if args["--codex"]:
        await codex_player(server, 2 if quick else 5, 3 if quick else 5)
        return
    if args["--core"]:
        await cue_latency(server, int(args["--cues"]))
        await fan_out(server, 3 if quick else 5, 20 if quick else 50)
        await bursts(server, quick)
        await hooks(server, 10 if quick else 30)
        await hook_confirm(server, 5 if quick else 15)
        cli_start(10 if quick else 30)
        return
    await serve_ready(server, 3 if quick else 7)
    await cue_latency(server, int(args["--cues"]))
    await fan_out(server, 3 if quick else 5, 20 if quick else 50)
    await bursts(server, quick)
    await ensemble_time(server, (50,) if quick else (50, 200))
    await broadcast_time(server, 50, conductor=False)
    await broadcast_time(server, 50, conductor=True)
    await memory(server)
    cli_start(10 if quick else 30)
    await hooks(server, 10 if quick else 30)
    await hook_confirm(server, 5 if quick else 15)
    await idle_wake(server, 3 if quick else 7)
    await lineup_up(server)
    await permission_relay(server, 3 if quick else 9)
    with tempfile.TemporaryDirectory() as home:
        await dashboard_paint(server, Path(home), 50 if quick else 200, 3 if quick else 7)
        await dashboard_latency(server, Path(home), 5 if quick else 20)
    await scheduled_cues(server, 3 if quick else 15)
    await copilot_bridge(server, 3 if quick else 5, 5 if quick else 20)
    await codex_player(server, 2 if quick else 5, 3 if quick else 5)
    await board(server, 3 if quick else 10, 10 if quick else 30)
    print(f"idle cost: one long-poll Update per {tempo.POLL_WAIT:.0f} s = "
          f"{86400 / tempo.POLL_WAIT:.0f} updates a day per idle session", flush=True)


def main() -> int:
    from docopt import docopt

    args = docopt(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        argv = tempo._dev_server_argv(tempo.temporal_binary(), "127.0.0.1", port, str(Path(tmp) / "bench.db"),
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
