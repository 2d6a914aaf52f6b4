"""Record the histories tests/test_replay.py replays: today's workflows, driven as users drive them.

    .venv/bin/python scripts/record_histories.py [--out DIR]

It starts its own Temporal dev server (a temporary database on free loopback ports), then plays one
ensemble with real `tempo serve` sessions through the MCP client the tests use (tests/conftest.py's
`play`) and the real `tempo hook` command, with short timeouts so every path runs in a minute:

- a conductor, `bob` (a Claude Code session whose hooks never run: cues stay unread) and `alice`;
- the board: the conductor adds a task, bob claims it (the board tells bob he holds something);
- cues to bob from alice and the conductor; bob's stall (cues unread past the stall timeout) is told
  to the conductor; bob reads them with `listen` (read receipts, one relayed to the conductor);
- bob asks a permission through the PermissionRequest hook and the conductor answers it; bob says
  it waits for input (the Notification hook), a second stall;
- enough cues for bob to continue as new (cues_per_run 4), then bob leaves with cues unread: they
  are handed on to the conductor, the board reopens bob's task and tells the conductor;
- alice renames herself (a new workflow takes over) and schedules a one-off cue (ScheduledCueWorkflow);
- `carl` is killed (SIGKILL, no goodbye): a cue to him waits past the undelivered timeout, his run
  ends by its deadline and hands the cue to the conductor.

Each closed run of each workflow is written as `<what>-<n>.json` (WorkflowHistory.to_json, the format
`temporal workflow show --output json` writes) in tests/histories/<commit>/, the commit whose code
recorded them, with `index.json` naming each file's workflow ID: the files tests/test_replay.py replays.
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import tempo  # noqa: E402
from conftest import DevServer, free_port, play, wait_until  # noqa: E402
from tempo_workflows import Command, Permit, WatchInput  # noqa: E402
from test_hooks import hook  # noqa: E402

ENSEMBLE = "rec"
SHORT = {"CLAUDE_TEMPO_STALL_TIMEOUT": "2", "CLAUDE_TEMPO_CUES_PER_RUN": "4", "CLAUDE_TEMPO_UNDELIVERED_TIMEOUT": "3"}


async def next_cue(player, kind: str, timeout: float = 30) -> dict:
    """The next pushed cue of `kind` (others are skipped)."""
    while True:
        got = await player.next_cue(timeout=timeout)
        if got["meta"].get("kind") == kind:
            return got


async def play_ensemble(server: DevServer) -> None:
    sid = str(uuid.uuid4())
    async with play(server, ENSEMBLE, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
            play(server, ENSEMBLE, CLAUDE_TEMPO_PLAYER_NAME="alice", **SHORT) as alice:
        await conductor.name()
        await alice.name()
        async with play(server, ENSEMBLE, CLAUDE_TEMPO_PLAYER_NAME="bob", CLAUDE_CODE_SESSION_ID=sid, **SHORT) as bob:
            await bob.name()
            await conductor.call("task_add", tasks=[{"id": "r", "title": "review PR 12"}, {"id": "a", "title": "write"},
                                                    {"id": "b", "title": "ship", "after": ["a"]}])
            await bob.call("task_claim", id="r")
            await alice.call("task_claim", id="a")
            await alice.call("reserve", paths=["src/*.py"], reason="writing")
            await alice.call("task_done", id="a")  # b is ready: the board cues who may take it
            await alice.call("release")
            await bob.call("set_part", part="reviewing PR 12")
            await alice.call("cue", to="bob", message="one")
            await conductor.call("cue", to="bob", message="two")
            told = await next_cue(conductor, "report")  # bob left them unread past the stall timeout
            assert "unread" in told["content"], told
            read = await bob.call("listen")
            assert {"one", "two"} <= {m["text"] for m in read["messages"]}, read

            # A permission asked through the real hook, answered by the conductor.
            asking = asyncio.create_task(asyncio.to_thread(
                hook, "PermissionRequest", sid, tool_name="Bash", tool_input={"command": "touch MARKER"}))
            asked = await next_cue(conductor, "permission")
            await conductor.call("permit", request_id=asked["meta"]["message_id"], decision="allow")
            said = await asking
            assert said.returncode == 0 and "allow" in said.stdout, said
            asking = asyncio.create_task(asyncio.to_thread(
                hook, "PermissionRequest", sid, tool_name="Bash", tool_input={"command": "rm -rf build"}))
            asked = await next_cue(conductor, "permission")
            client = await tempo.connect(tempo.Config(address=server.address))
            await client.get_workflow_handle(f"claude-session-{ENSEMBLE}-bob").signal(  # the public signal
                "answer_permission", Permit(request_id=asked["meta"]["message_id"], decision="deny", reason="not now", by="cli"))
            said = await asking
            assert said.returncode == 0 and "deny" in said.stdout, said
            waiting = await asyncio.to_thread(hook, "Notification", sid, notification_type="idle_prompt",
                                              message="Claude is waiting for your input")
            assert waiting.returncode == 0, waiting.stderr
            told = await next_cue(conductor, "report")
            assert "for input" in told["content"], told

            for i in range(4):  # past cues_per_run: bob's run continues as new
                await alice.call("cue", to="bob", message=f"more {i}")
            await asyncio.to_thread(hook, "UserPromptSubmit", sid, prompt="go on")
            await bob.call("listen")
            await alice.call("cue", to="bob", message="left unread")
            await conductor.call("cue", to="alice", message="seen?", wait_seen=True)
            await conductor.call("cue", to="all", message="to everyone")
            held = client.get_workflow_handle(f"claude-session-{ENSEMBLE}-conductor")
            await held.signal("command", Command(text="status, please", source="cli"))
            await held.execute_update("watch", WatchInput(after=-1, wait=0.5))
            await held.execute_update("watch", WatchInput(after=10**6, wait=0.5))
            await wait_until(lambda: unread(alice, "bob"), timeout=30)
        # bob's window closed with one cue unread: handed on to the conductor; the board reopens his task
        await next_cue(conductor, "undelivered")
        await wait_until(lambda: board_told(conductor), timeout=30)

        await alice.call("set_name", name="alicia")
        await alice.call("schedule", name="ping", message="stand-up", to="conductor", after="6s")
        await next_cue(conductor, "scheduled", timeout=60)

        async with play(server, ENSEMBLE, CLAUDE_TEMPO_PLAYER_NAME="carl", **SHORT) as carl:
            await carl.name()
            client = await tempo.connect(tempo.Config(address=server.address))
            info = await client.get_workflow_handle(f"claude-session-{ENSEMBLE}-carl").query("info")
            os.kill(info["pid"], signal.SIGKILL)  # the serve this script started: gone without a word
            await alice.call("cue", to="carl", message="are you there?")
            await next_cue(conductor, "undelivered", timeout=60)
        await asyncio.sleep(1)
        await alice.call("cue", to="conductor", message="done here")


async def unread(player, name: str) -> bool:
    listing = await player.call("ensemble")
    return any(p["name"] == name and p["unread"] for p in listing["players"])


board_notices: list[str] = []


async def board_told(conductor) -> bool:
    with contextlib.suppress(asyncio.TimeoutError):
        got = await conductor.next_cue(timeout=1)
        board_notices.append(got["content"])
    return any("left holding" in text for text in board_notices)


async def save(server: DevServer, out: Path) -> list[Path]:
    """Every closed run of the ensemble's workflows, one JSON file each (oldest first), and `index.json`:
    each file's workflow ID (a replay needs it: the workflow reads its own ID)."""
    client = await tempo.connect(tempo.Config(address=server.address))
    runs = [r async for r in client.list_workflows("ExecutionStatus != 'Running'")]
    runs.sort(key=lambda r: r.start_time)
    out.mkdir(parents=True, exist_ok=True)
    index, count = {}, {}
    for run in runs:
        what = run.id.removeprefix(f"claude-session-{ENSEMBLE}-").removeprefix("claude-tempo-")
        what = what.split("-20")[0] if what.startswith("scheduled-") else what  # a fire's ID ends in its time
        count[what] = count.get(what, 0) + 1
        history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
        name = f"{what}-{count[what]}.json"
        (out / name).write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
        index[name] = run.id
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return [out / name for name in index]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    parser.add_argument("--out", default=str(ROOT / "tests" / "histories" / commit),
                        help="where the files go (default: tests/histories/<this checkout's commit>)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tempo-record-") as tmp:
        port = free_port()
        argv = tempo._dev_server_argv(tempo.temporal_binary(), "127.0.0.1", port, f"{tmp}/temporal.db",
                                     http_port=free_port(), metrics_port=free_port())
        server = DevServer(address=f"127.0.0.1:{port}", process=None, db=f"{tmp}/temporal.db", argv=argv)
        await asyncio.to_thread(server.start)
        try:
            await play_ensemble(server)
            # The board and the players still running end here, so their histories close too.
            client = await tempo.connect(tempo.Config(address=server.address))
            async for run in client.list_workflows("ExecutionStatus = 'Running'"):
                await client.get_workflow_handle(run.id, run_id=run.run_id).terminate("recorded")
            for path in await save(server, Path(args.out)):
                print(path)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
