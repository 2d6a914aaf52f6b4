"""A `tempo serve` ends soon after its client goes (stdin closed, or SIGTERM), in every state.

Each cycle starts a real `tempo serve`, speaks MCP to it over its pipes as Claude Code does, brings
it into one state (joined, conductor, mid-call, mid-cue, Temporal killed first, Temporal never
there, not even initialized), then closes its stdin (or sends SIGTERM) and times how long the
process takes to be gone. scripts/serve_cycles.py runs the same cycles a hundred times over.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from temporalio.api.enums.v1 import TaskQueueKind
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import PollWorkflowTaskQueueRequest

import tempo
import tempo_workflows
from conftest import ROOT, DevServer, free_port, tempo_env

GONE_WITHIN = 5.0  # s after stdin closed: the bound for "no process left alive"


@dataclass
class Served:
    """One `tempo serve` on pipes, its stdout read line by line on a thread."""

    process: subprocess.Popen
    lines: queue.Queue
    next_id: int = 1

    @classmethod
    def start(cls, env: dict) -> "Served":
        process = subprocess.Popen([sys.executable, str(ROOT / "tempo.py"), "serve"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(json.loads(line)) for line in process.stdout], daemon=True).start()
        return cls(process, lines)

    def send(self, method: str, params: dict | None = None, notify: bool = False) -> int:
        message = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        if not notify:
            message["id"] = self.next_id
            self.next_id += 1
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()
        return message.get("id", 0)

    def answer(self, request: int, timeout: float = 120) -> dict:  # a loaded machine starts slowly
        deadline = time.monotonic() + timeout
        while True:
            message = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if message.get("id") == request:
                return message

    def initialize(self) -> None:
        self.answer(self.send("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                             "clientInfo": {"name": "cycles", "version": "0"}}))
        self.send("notifications/initialized", notify=True)

    def call(self, tool: str, **arguments) -> int:
        return self.send("tools/call", {"name": tool, "arguments": arguments})

    def leave(self, how: str = "stdin") -> float:
        """Close stdin (or SIGTERM it); return the seconds until the process was gone (inf: still there)."""
        began = time.monotonic()
        if how == "sigterm":
            self.process.send_signal(signal.SIGTERM)
        else:
            self.process.stdin.close()
        try:
            self.process.wait(GONE_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return float("inf")
        return time.monotonic() - began


def wchan(pid: int) -> str:
    """Where in the kernel a process sleeps (Linux)."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read()
    except OSError:
        return ""


def cycle(state: str, address: str, home: str, kill_server=None) -> tuple[str, float, str]:
    """One start/stop of `tempo serve` in `state`; (state, seconds to be gone, ensemble)."""
    try:
        return _cycle(state, address, home, kill_server)
    except Exception as e:
        raise AssertionError(f"cycle {state!r}: {e!r}") from e


def _serve_env(address: str, ensemble: str, home: str, session: str, **extra: str) -> dict[str, str]:
    """The environment of a `tempo serve` that Claude Code session `session` starts (a player unless `extra` says)."""
    return {**os.environ, **tempo_env(DevServer(address, None, "", []), ensemble), "CLAUDE_TEMPO_HOME": home,
            "CLAUDE_CODE_SESSION_ID": session, "CLAUDE_TEMPO_CONDUCTOR": "false", **extra}


def _cycle(state: str, address: str, home: str, kill_server=None) -> tuple[str, float, str]:
    ensemble = f"t{uuid.uuid4().hex[:10]}"
    session = uuid.uuid4().hex
    env = _serve_env(address, ensemble, home, session, CLAUDE_TEMPO_CONDUCTOR="true" if state == "conductor" else "false")
    served = Served.start(env)
    how = "sigterm" if state.endswith("+sigterm") else "stdin"
    if state.startswith("unstarted"):
        time.sleep(0.3)  # still importing: not even initialized
        return state, served.leave(how), ensemble
    served.initialize()
    if state.startswith("never-up"):  # Temporal unreachable from the start: joining retries
        time.sleep(0.5)
        return state, served.leave(how), ensemble
    served.answer(served.call("ensemble"))  # answered once the player has joined
    if state == "mid-call":  # a call in flight when the client goes
        served.call("cue", to=f"nobody-{uuid.uuid4().hex[:6]}", message="are you there?")
    elif state == "mid-cue":  # a cue on its way to this session as the client goes
        other = Served.start({**env, "CLAUDE_CODE_SESSION_ID": uuid.uuid4().hex, "CLAUDE_TEMPO_CONDUCTOR": "false"})
        other.initialize()
        other.answer(other.call("ensemble"))  # joined
        other.call("cue", to="all", message="one last thing")  # everyone but the sender: this session
        time.sleep(0.02)
        gone = served.leave(how)
        other.leave()
        return state, gone, ensemble
    elif state == "server-killed":  # Temporal gone first: the player cannot be ended, a rejoin starts
        kill_server()
        time.sleep(0.5)
        served.call("ensemble")  # and a call that cannot be answered
    elif state == "waiter":  # a `tempo hook wait` idles on this session; it goes with it
        waiter = subprocess.Popen([sys.executable, str(ROOT / "tempo.py"), "hook", "wait"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        waiter.stdin.write(json.dumps({"session_id": session, "hook_event_name": "Stop"}).encode())
        waiter.stdin.close()
        deadline = time.monotonic() + 20
        while "unix_stream" not in wchan(waiter.pid):  # blocked reading its session's socket: connected
            assert waiter.poll() is None and time.monotonic() < deadline, "the waiter should wait while its session lives"
            time.sleep(0.05)
        gone = served.leave(how)
        try:
            waiter.wait(GONE_WITHIN)
        except subprocess.TimeoutExpired:
            waiter.kill()
            return state, float("inf"), ensemble
        return state, gone, ensemble
    return state, served.leave(how), ensemble


def left_behind(address: str, results: list[tuple[str, float, str]]) -> list[str]:
    """'state: name' of each player still running after its cycle where Temporal was up: each should
    have been ended on the way out, not left for the 3-minute rule."""

    async def running() -> list[str]:
        client = await tempo.connect(tempo.Config(address=address))
        names = []
        for state, _, ensemble in results:
            if not state.startswith(("never-up", "unstarted", "server-killed")):
                names += [f"{state}: {p.name}" for p in await tempo.list_players(client, ensemble)]
        return names

    return asyncio.run(running())


UP_STATES = ["joined", "conductor", "mid-call", "mid-cue", "joined+sigterm", "waiter", "unstarted", "unstarted+sigterm"]


def test_serve_is_gone_soon_after_its_client_in_every_state(temporal, own_server, tmp_path):
    """Cycles a few at a time: with Temporal up (the player must have ended), never up, and killed first."""
    home = str(tmp_path / "home")
    states = UP_STATES + ["never-up", "never-up+sigterm"]
    nowhere = f"127.0.0.1:{free_port()}"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: cycle(s, nowhere if s.startswith("never-up") else temporal.address, home), states))
        # sessions joined on a server of their own, which is killed under them
        killed = threading.Event()

        def kill() -> None:
            if not killed.is_set():
                killed.set()
                own_server.process.kill()
                own_server.process.wait()

        joined = threading.Barrier(2)

        def on_own(_: int):
            return cycle("server-killed", own_server.address, home, kill_server=lambda: (joined.wait(30), kill()))

        results += list(pool.map(on_own, range(2)))
    slow = [(state, round(gone, 2)) for state, gone, _ in results if gone > GONE_WITHIN]
    assert not slow, f"still alive {GONE_WITHIN} s after stdin closed / SIGTERM: {slow}"
    assert left_behind(temporal.address, results) == []
    print("seconds to be gone:", sorted(round(g, 2) for _, g, _ in results))


def test_a_session_that_ends_as_it_joins_ends_its_player_though_another_worker_lost_its_first_task(temporal, tmp_path):
    """A worker that exits as its poll takes a task loses it (temporalio interrupts polls at shutdown); the
    task comes back after the workflow task timeout. A serve told to go just after joining still waits for
    that and ends its player. Here a stand-in for such a worker (raw polls, never answered) takes the task."""
    queue_name, ensemble = f"q{uuid.uuid4().hex[:10]}", f"t{uuid.uuid4().hex[:10]}"
    env = _serve_env(temporal.address, ensemble, str(tmp_path / "home"), uuid.uuid4().hex, CLAUDE_TEMPO_TASK_QUEUE=queue_name)

    def players_first_task(taken: list[str]) -> bool:  # the board's first task may be among them too
        return any(t.startswith(tempo_workflows.workflow_id(ensemble, "")) for t in taken)

    async def scenario() -> tuple[list[str], float, list]:
        client = await tempo.connect(tempo.Config(address=temporal.address))
        request = PollWorkflowTaskQueueRequest(namespace="default", identity="a worker on its way out",
                                               task_queue=TaskQueue(name=queue_name, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL))
        polls = [asyncio.create_task(client.workflow_service.poll_workflow_task_queue(request)) for _ in range(8)]
        await asyncio.sleep(1)  # the polls wait at the server before the session's own worker polls
        served = await asyncio.to_thread(Served.start, env)
        await asyncio.to_thread(served.initialize)
        taken: list[str] = []  # the board's first task may come first: it is lost the same way
        pending = set(polls)
        while pending and not players_first_task(taken):
            done, pending = await asyncio.wait(pending, timeout=60, return_when=asyncio.FIRST_COMPLETED)
            assert done, "the player's first workflow task never reached these polls"
            taken += [p.result().workflow_execution.workflow_id for p in done]
        for poll in pending:
            poll.cancel()  # the worker is gone: it answers nothing
        gone = await asyncio.to_thread(served.leave)
        return taken, gone, await tempo.list_players(client, ensemble)

    taken, gone, left = asyncio.run(scenario())
    assert players_first_task(taken), taken
    assert gone <= GONE_WITHIN, f"still alive {GONE_WITHIN} s after stdin closed"
    assert [p.name for p in left] == [], "the player was left for the 3-minute rule"
