"""Broadcast: one `cue` to several players, `all` or `role:NAME`; each recipient its own cue."""

import asyncio
import contextlib

import pytest

import tempo
from conftest import ToolFailed, play

pytestmark = pytest.mark.anyio


async def next_of_kind(player, kind: str = "cue", timeout: float = 15) -> dict:
    while True:  # a conductor hears "X joined" notices too
        event = await player.next_cue(timeout)
        if event["meta"]["kind"] == kind:
            return event


@contextlib.asynccontextmanager
async def band(temporal, ensemble: str, names: list[str]):
    """A conductor and one named player per name, all joined."""
    async with contextlib.AsyncExitStack() as stack:
        boss = await stack.enter_async_context(play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true"))
        players = {}
        for name in names:
            players[name] = await stack.enter_async_context(play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME=name))
            await players[name].call("ensemble")  # joined under its name
        yield boss, players


async def test_cue_to_several_names_with_one_absent(temporal, ensemble):
    async with band(temporal, ensemble, ["api", "ui", "db"]) as (boss, players):
        result = await boss.call("cue", to=["api", "ghost", "ui"], message="ship it")
        assert [d["to"] for d in result["sent"]] == ["api", "ui"]
        assert result["not_sent"] == [{"to": "ghost", "why": f"no player named 'ghost' in ensemble '{ensemble}'"}]
        ids = {d["to"]: d["message_id"] for d in result["sent"]}
        assert len(set(ids.values())) == 2  # each recipient its own cue
        for name in ("api", "ui"):
            event = await next_of_kind(players[name])
            assert event["content"] == "ship it"
            assert event["meta"]["message_id"] == ids[name] and event["meta"]["from"] == "conductor"
        with pytest.raises(asyncio.TimeoutError):  # db was not named
            await next_of_kind(players["db"], timeout=1.5)
        # The conductor's history has one line out per recipient.
        client = await tempo.connect(tempo.Config(address=temporal.address))
        history = await client.get_workflow_handle(f"claude-session-{ensemble}-conductor").query("history")
        assert sorted(h["recipient"] for h in history if h["kind"] == "cue") == ["api", "ui"]

        # Comma-separated names and @names in one string work as well; wait_seen waits for each receipt.
        again = await boss.call("cue", to="@db, api", message="and you", wait_seen=True)
        assert [d["to"] for d in again["sent"]] == ["db", "api"] and again["not_sent"] == []
        assert [d["seen"]["path"] for d in again["sent"]] == ["channel", "channel"]
        assert all(d["seen"] is None for d in result["sent"])  # by default nobody waited for them


async def test_all_and_roles(temporal, ensemble):
    async with band(temporal, ensemble, ["api", "ui"]) as (boss, players):
        everyone = await players["api"].call("cue", to="all", message="standup in 5")
        assert sorted(d["to"] for d in everyone["sent"]) == ["conductor", "ui"]  # everyone but me
        assert (await next_of_kind(boss))["content"] == "standup in 5"
        assert (await next_of_kind(players["ui"]))["content"] == "standup in 5"

        to_players = await boss.call("cue", to="role:player", message="status?")
        assert sorted(d["to"] for d in to_players["sent"]) == ["api", "ui"]
        to_claude = await players["ui"].call("cue", to="role:claude", message="by type")
        assert sorted(d["to"] for d in to_claude["sent"]) == ["api", "conductor"]
        for name in ("api", "ui"):
            assert (await next_of_kind(players[name]))["content"] == "status?"

        mixed = await players["ui"].call("cue", to=["role:copilot", "ui", "api"], message="x")
        assert [d["to"] for d in mixed["sent"]] == ["api"]
        assert {n["to"]: n["why"] for n in mixed["not_sent"]} == {
            "role:copilot": f"no other player with role or type 'copilot' in ensemble '{ensemble}'",
            "ui": "that is you",
        }


async def test_nobody_to_cue_is_an_error_that_lists_the_players(temporal, ensemble):
    async with band(temporal, ensemble, ["api"]) as (boss, players):
        with pytest.raises(ToolFailed, match=r"nobody got the cue \(ghost: no player named 'ghost'.*players: api"):
            await boss.call("cue", to="ghost, phantom", message="hello?")
        with pytest.raises(ToolFailed, match="no recipient"):
            await boss.call("cue", to=[], message="hello?")
        with pytest.raises(ToolFailed, match="the name 'all' is reserved"):  # it could never be cued alone
            await boss.call("recruit", name="all", directory=".")
    async with play(temporal, ensemble + "x") as alone:
        with pytest.raises(ToolFailed, match="nobody got the cue"):
            await alone.call("cue", to="all", message="anyone?")
