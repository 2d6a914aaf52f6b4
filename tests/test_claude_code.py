"""The real Claude Code (its model scripted on loopback) runs tempo as its MCP server and cues players."""

import asyncio
import json

import pytest

from claude_code import Interactive, ScriptedModel, claude_home, last_user_text, run_print, tool_names, tool_use, write_tempo_mcp_json
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
    write_tempo_mcp_json(directory, {k: v for k, v in tempo_env(temporal, ensemble, home=home).items() if k != "PATH"})
    return directory, env


def cue_once(to: str, message: str):
    """A model that calls tempo's cue once, then answers "sent"."""

    def reply(body):
        if len(body["messages"]) == 1:
            return [tool_use("mcp__claude-tempo__cue", {"to": to, "message": message})]
        return ["sent"]

    return reply


async def players(player, count: int) -> bool:
    return len((await player.call("ensemble"))["players"]) >= count


def test_claude_p_sees_tempos_tools(project, model):
    directory, env = project
    run = run_print("who is here?", cwd=directory, env=env, args=ALLOW_TEMPO)
    assert run.returncode == 0, run.stderr
    first = model.requests()[0]
    assert {"mcp__claude-tempo__cue", "mcp__claude-tempo__ensemble", "mcp__claude-tempo__listen"} <= set(tool_names(first))
    assert "who is here?" in last_user_text(first)


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
            await asyncio.to_thread(session.wait_screen, "? for shortcuts")
            await wait_until(lambda: players(bob, 2), timeout=30)  # its tempo serve has joined: the tools are there
            await asyncio.to_thread(session.type, "tell bob hello")
            event = await bob.next_cue(timeout=30)
            assert event["content"] == "hello from tmux"
            await asyncio.to_thread(session.wait_screen, "sent")
