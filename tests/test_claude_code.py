"""The real Claude Code (its model scripted on loopback) runs tempo as its MCP server and cues players."""

import asyncio
import json
import os
import signal
import sys

import pytest

from claude_code import (Interactive, ScriptedModel, calls, claude_home, last_user_text, poll, run_print, shown, tool_names, tool_use,
                         transcript_shown, write_hooks, write_tempo_mcp_json)
from conftest import play, tempo_env, wait_until

pytestmark = pytest.mark.anyio

ALLOW_TEMPO = ["--allowedTools", "mcp__claude-tempo"]


@pytest.fixture
def model():
    with ScriptedModel() as scripted:
        yield scripted


@pytest.fixture
def project(tmp_path, temporal, ensemble, model):
    """A trusted project whose .mcp.json runs this tempo (as `tempo init` writes it); returns (dir, env)."""
    directory = tmp_path / "project"
    directory.mkdir()
    home = tmp_path / "home"
    env = claude_home(home, directory, model)
    server_env = tempo_env(temporal, ensemble, home=home)
    del server_env["PATH"]  # tempo serve inherits claude's PATH, the one claude_home controls
    write_tempo_mcp_json(directory, server_env)
    return directory, env


def cue_once(to: str, message: str):
    """A model that calls tempo's cue once, then answers "sent"."""

    def reply(body):
        if not calls(body, "mcp__claude-tempo__cue"):
            return [tool_use("mcp__claude-tempo__cue", {"to": to, "message": message})]
        return ["sent"]

    return reply


async def players(player, count: int) -> bool:
    return len((await player.call("ensemble"))["players"]) >= count


def test_claude_p_sees_tempos_tools(project, model):
    directory, env = project
    run = run_print("who is here?", cwd=directory, env=env, args=ALLOW_TEMPO)
    assert run.returncode == 0, run.stderr
    last = model.requests()[-1]  # the first may precede tempo's connection (the model then waits for it)
    assert {"mcp__claude-tempo__cue", "mcp__claude-tempo__ensemble", "mcp__claude-tempo__listen"} <= set(tool_names(last))
    assert "who is here?" in shown(last)


async def test_claude_p_cue_reaches_another_player(project, model, temporal, ensemble):
    directory, env = project
    async with play(temporal, ensemble) as bob:
        await bob.call("set_name", name="bob")
        model.reply = cue_once("bob", "hello from a real Claude Code")
        run = await asyncio.to_thread(run_print, "tell bob hello", cwd=directory, env=env, args=ALLOW_TEMPO)
        assert run.returncode == 0, run.stderr
        event = await bob.next_cue()
        assert event["content"] == "hello from a real Claude Code"
        result = json.loads(last_user_text(model.requests()[-1]).split("\n")[0])  # the cue tool's result, as the model read it
        assert result["message_id"] == event["meta"]["message_id"] and result["to"] == "bob"


async def test_interactive_session_cue_reaches_another_player(project, model, temporal, ensemble):
    directory, env = project
    async with play(temporal, ensemble) as bob:
        await bob.call("set_name", name="bob")
        model.reply = cue_once("bob", "hello from tmux")
        with Interactive(cwd=directory, env=env, args=ALLOW_TEMPO) as session:
            await asyncio.to_thread(session.wait_ready)
            await wait_until(lambda: players(bob, 2), timeout=30)  # its tempo serve has joined: the tools are there
            await asyncio.to_thread(session.type, "tell bob hello")
            event = await bob.next_cue(timeout=30)
            assert event["content"] == "hello from tmux"
            await asyncio.to_thread(session.wait_screen, "sent")


# -- Claude Code's hooks, as tempo's delivery relies on them (throwaway hooks, not tempo's) -----

HOOK = """
import json, os, sys, time
event = json.load(sys.stdin)
kind, arg, log = sys.argv[1], sys.argv[2], sys.argv[3]
with open(log, "a") as f:
    f.write(json.dumps({"pid": os.getpid(), "event": event, "session": os.environ.get("CLAUDE_CODE_SESSION_ID")}) + "\\n")
if kind == "context":
    print(json.dumps({"hookSpecificOutput": {"hookEventName": event["hook_event_name"], "additionalContext": arg}}))
elif kind == "block" and not event.get("stop_hook_active"):
    print(json.dumps({"decision": "block", "reason": arg}))
elif kind == "wait":  # a waiter: block until the file appears, then wake the model with its text
    deadline = time.monotonic() + 60
    while not os.path.exists(arg):
        if time.monotonic() > deadline:
            sys.exit(0)
        time.sleep(0.01)
    text = open(arg).read()
    os.unlink(arg)
    sys.stderr.write(text)
    sys.exit(2)
"""


@pytest.fixture
def hooks(project, tmp_path):
    """hooks({event: (kind, arg, extra keys)}) writes throwaway hooks; yields their log; ends leftover waiters."""
    directory, _ = project
    script, log = tmp_path / "hook.py", tmp_path / "hooks.jsonl"
    script.write_text(HOOK)

    def install(spec: dict) -> None:
        write_hooks(directory, {
            event: [{"hooks": [{"type": "command", "command": f"{sys.executable} {script} {kind} '{arg}' {log}", **extra}]}]
            for event, (kind, arg, extra) in spec.items()
        })

    def entries() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    install.entries = entries
    yield install
    for entry in entries():  # an armed async hook outlives claude: end ours
        try:
            os.kill(entry["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_hook_texts_reach_the_model_and_the_transcript(project, model, hooks):
    directory, env = project
    hooks({
        "UserPromptSubmit": ("context", "UPS-1", {}),
        "PostToolUse": ("context", "PTU-1", {}),
        "Stop": ("block", "STOP-1", {}),
    })
    model.reply = lambda body: None if calls(body, "mcp__claude-tempo__ensemble") else [tool_use("mcp__claude-tempo__ensemble")]
    run = run_print("hello", cwd=directory, env=env, args=ALLOW_TEMPO)
    assert run.returncode == 0, run.stderr
    first, *_, after_tool, after_stop = model.requests()
    assert "<system-reminder>\nUserPromptSubmit hook additional context: UPS-1\n</system-reminder>" in last_user_text(first)
    assert ("<system-reminder>\nPostToolUse:mcp__claude-tempo__ensemble hook additional context: PTU-1\n</system-reminder>"
            in last_user_text(after_tool))
    assert last_user_text(after_stop) == "Stop hook feedback:\nSTOP-1"
    events = hooks.entries()
    assert {e["event"]["session_id"] for e in events} == {e["session"] for e in events}  # = CLAUDE_CODE_SESSION_ID
    path = events[0]["event"]["transcript_path"]
    for text in ("UPS-1", "PTU-1", "STOP-1"):
        assert transcript_shown(path, text), text


def test_async_rewake_hook_wakes_an_idle_session(project, model, hooks, tmp_path):
    directory, env = project
    wake = tmp_path / "wake"
    hooks({"Stop": ("wait", str(wake), {"asyncRewake": True})})
    with Interactive(cwd=directory, env=env) as session:
        session.wait_ready()
        session.type("hello")
        model.wait_for(lambda body: "hello" in last_user_text(body))
        poll(lambda: any(e["event"]["hook_event_name"] == "Stop" for e in hooks.entries()), what="the waiter armed")
        (tmp_path / "wake.tmp").write_text("CUE-1")
        (tmp_path / "wake.tmp").rename(wake)
        woken = model.wait_for(lambda body: "CUE-1" in last_user_text(body))
        assert last_user_text(woken).endswith(
            '<task-notification>\n<summary>Stop hook feedback</summary>\n</task-notification>\n'
            '<system-reminder>\nStop hook blocking error from command "Stop": CUE-1\n</system-reminder>')
        session.wait_screen("Stop hook feedback")
        path = hooks.entries()[0]["event"]["transcript_path"]
        poll(lambda: transcript_shown(path, "CUE-1"), what="the rewake written to the transcript")
