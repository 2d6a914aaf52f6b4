"""Cues: pushed into the recipient's session at once, exactly once, with clear errors."""

import asyncio
import re

import pytest

import tempo
from conftest import ToolFailed, free_port, play, wait_until

pytestmark = pytest.mark.anyio


async def test_server_declares_channels_and_tells_the_model(temporal, ensemble):
    async with play(temporal, ensemble) as a:
        assert a.initialize.capabilities.experimental == {"claude/channel": {}}
        assert "cue" in a.initialize.instructions and "channel" in a.initialize.instructions
        tools = {t.name: t for t in (await a.client.list_tools()).tools}
        assert {"ensemble", "cue", "set_name", "set_part", "listen"} <= set(tools)
        for tool in tools.values():
            assert tool.description and tool.annotations is not None


async def test_cue_is_pushed_to_the_recipient_with_sender_id_and_time(temporal, ensemble):
    async with play(temporal, ensemble) as a, play(temporal, ensemble) as b:
        await a.call("set_name", name="alice")
        await b.call("set_name", name="bob")
        sent = await a.call("cue", to="bob", message="please review PR 12")
        event = await b.next_cue()
        assert event["content"] == "please review PR 12"
        meta = event["meta"]
        assert meta["from"] == "alice"
        assert meta["message_id"] == sent["message_id"]
        assert meta["sent_at"] == sent["sent_at"]
        assert all(re.fullmatch(r"[A-Za-z0-9_]+", key) for key in meta)
        # and the answer goes back the same way
        await b.call("cue", to="alice", message="done, LGTM")
        back = await a.next_cue()
        assert (back["content"], back["meta"]["from"]) == ("done, LGTM", "bob")


async def test_many_cues_arrive_once_each_and_in_order(temporal, ensemble):
    async with play(temporal, ensemble) as a, play(temporal, ensemble) as b:
        await b.call("set_name", name="bob")
        for i in range(25):
            await a.call("cue", to="bob", message=f"step {i}")
        got = [(await b.next_cue())["content"] for _ in range(25)]
        assert got == [f"step {i}" for i in range(25)]
        with pytest.raises(asyncio.TimeoutError):  # nothing twice
            await b.next_cue(timeout=1.5)


async def test_listen_returns_each_unread_cue_once(temporal, ensemble):
    """Channels may be off in the session: every cue stays readable through listen, once."""
    async with play(temporal, ensemble) as a, play(temporal, ensemble) as b:
        await b.call("set_name", name="bob")
        first = await a.call("cue", to="bob", message="one")
        second = await a.call("cue", to="bob", message="two")
        await b.next_cue()
        await b.next_cue()
        read = await b.call("listen")
        assert [(m["message_id"], m["text"], m["from"]) for m in read["messages"]] == [
            (first["message_id"], "one", await a.name()),
            (second["message_id"], "two", await a.name()),
        ]
        assert (await b.call("listen"))["messages"] == []


async def test_fan_out_to_several_players(temporal, ensemble):
    async with play(temporal, ensemble) as a, play(temporal, ensemble) as b, play(temporal, ensemble) as c:
        names = [await b.name(), await c.name()]
        for name in names:
            await a.call("cue", to=name, message=f"hi {name}")
        assert (await b.next_cue())["content"] == f"hi {names[0]}"
        assert (await c.next_cue())["content"] == f"hi {names[1]}"


async def test_unknown_recipient_lists_who_exists(temporal, ensemble):
    async with play(temporal, ensemble) as a, play(temporal, ensemble) as b:
        await b.call("set_name", name="bob")
        with pytest.raises(ToolFailed, match=r"no player named 'carol'.*players: bob"):
            await a.call("cue", to="carol", message="hello?")
        with pytest.raises(ToolFailed, match=r"no player named 'bad name!'"):
            await a.call("cue", to="bad name!", message="hello?")


async def test_empty_and_oversized_messages_are_refused_with_the_limit(temporal, ensemble):
    async with play(temporal, ensemble) as a, play(temporal, ensemble) as b:
        bob = await b.name()
        with pytest.raises(ToolFailed, match="empty"):
            await a.call("cue", to=bob, message="   ")
        too_big = "x" * (tempo.MAX_CUE_CHARS + 1)
        with pytest.raises(ToolFailed, match=f"limit of {tempo.MAX_CUE_CHARS}"):
            await a.call("cue", to=bob, message=too_big)
        # the limit itself is fine, and nothing of the refused ones arrived
        await a.call("cue", to=bob, message="y" * tempo.MAX_CUE_CHARS)
        assert (await b.next_cue())["content"] == "y" * tempo.MAX_CUE_CHARS


async def test_cue_reaches_a_busy_session_without_it_calling_anything(temporal, ensemble):
    """Liveness is the process: a session whose model never calls a tool still gets cues pushed."""
    async with play(temporal, ensemble) as a, play(temporal, ensemble) as b:
        bob = await b.name()
        await asyncio.sleep(2)  # b is "busy": no tool calls at all
        await a.call("cue", to=bob, message="are you there?")
        assert (await b.next_cue())["content"] == "are you there?"


async def test_temporal_down_gives_a_clear_error_not_a_crash(temporal, ensemble):
    dead = f"127.0.0.1:{free_port()}"
    async with play(temporal, ensemble, TEMPORAL_ADDRESS=dead) as a:
        tools = (await a.client.list_tools()).tools  # the server itself answers
        assert "cue" in {t.name for t in tools}
        with pytest.raises(ToolFailed) as failed:
            await a.call("ensemble")
        message = str(failed.value)
        assert dead in message and "tempo server" in message and "tempo up" in message


async def test_session_exit_ends_its_player(temporal, ensemble):
    async with play(temporal, ensemble) as a:
        async with play(temporal, ensemble) as b:
            bob = await b.name()
            assert bob in {p["name"] for p in (await a.call("ensemble"))["players"]}
        # b's client closed its stdin: the server ended its workflow on the way out

        async def gone():
            return bob not in {p["name"] for p in (await a.call("ensemble"))["players"]}

        await wait_until(gone)
        with pytest.raises(ToolFailed, match=f"no player named '{bob}'"):
            await a.call("cue", to=bob, message="still there?")


async def test_sigterm_ends_the_player_too(temporal, ensemble):
    import os
    import signal

    async with play(temporal, ensemble) as a:
        async with play(temporal, ensemble) as b:
            bob = await b.name()
            client = await tempo.connect(tempo.Config(address=temporal.address))
            _, info = await tempo.find_player(client, ensemble, bob)
            os.kill(info.pid, signal.SIGTERM)

            async def gone():
                return await tempo.find_player(client, ensemble, bob) is None

            await wait_until(gone)
        assert bob not in {p["name"] for p in (await a.call("ensemble"))["players"]}
