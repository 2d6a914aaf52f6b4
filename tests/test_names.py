"""Names: valid, unique per ensemble even under a race, reserved `conductor`, carried by a rename."""

import asyncio
import contextlib

import pytest

from conftest import ToolFailed, play

pytestmark = pytest.mark.anyio


async def names_in(player) -> set[str]:
    return {p["name"] for p in (await player.call("ensemble"))["players"]}


async def test_new_session_gets_a_random_8_hex_name_then_takes_its_own(temporal, ensemble):
    async with play(temporal, ensemble) as a:
        first = await a.name()
        assert len(first) == 8 and int(first, 16) >= 0
        taken = await a.call("set_name", name="alice")
        assert taken == {"name": "alice", "ensemble": ensemble, "workflow_id": f"claude-session-{ensemble}-alice"}
        assert await names_in(a) == {"alice"}


@pytest.mark.parametrize("bad", ["", "has space", "ünïcode", "a" * 65, "semi;colon", "quote'"])
async def test_invalid_names_are_refused_with_the_rule(temporal, ensemble, bad):
    async with play(temporal, ensemble) as a:
        with pytest.raises(ToolFailed, match=r"invalid name.*letters, digits, '-' or '_'"):
            await a.call("set_name", name=bad)


async def test_taken_name_is_refused_naming_the_holder(temporal, ensemble, tmp_path):
    async with play(temporal, ensemble, cwd=str(tmp_path)) as a, play(temporal, ensemble) as b:
        await a.call("set_name", name="alice")
        before = await b.name()
        with pytest.raises(ToolFailed, match=rf"'alice' is taken.*{tmp_path}"):
            await b.call("set_name", name="alice")
        assert await b.name() == before  # a failed claim changes nothing


async def test_conductor_and_all_are_reserved(temporal, ensemble):
    async with play(temporal, ensemble) as a:
        with pytest.raises(ToolFailed, match="reserved"):
            await a.call("set_name", name="conductor")
        with pytest.raises(ToolFailed, match="'all' is reserved: `cue` sends to 'all' as to everyone"):
            await a.call("set_name", name="all")  # `cue` to all means everyone
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="all") as b:
        notice = await b.next_cue()
        assert "'all' is reserved" in notice["content"] and "temporary name" in notice["content"]
        assert await b.name() != "all"


async def test_the_same_name_may_live_in_two_ensembles(temporal, ensemble):
    async with play(temporal, ensemble) as a, play(temporal, ensemble + "x") as b:
        await a.call("set_name", name="reviewer")
        await b.call("set_name", name="reviewer")
        assert await names_in(a) == {"reviewer"} and await names_in(b) == {"reviewer"}


async def test_ten_racing_claims_exactly_one_wins(temporal, ensemble):
    async with contextlib.AsyncExitStack() as stack:
        players = [await stack.enter_async_context(play(temporal, ensemble)) for _ in range(10)]
        for p in players:  # all registered before the race starts
            await p.name()

        async def claim(p):
            try:
                return await p.call("set_name", name="lead")
            except ToolFailed as e:
                return e

        results = await asyncio.gather(*(claim(p) for p in players))
        winners = [r for r in results if isinstance(r, dict)]
        losers = [r for r in results if isinstance(r, ToolFailed)]
        assert len(winners) == 1 and len(losers) == 9
        assert all("'lead' is taken" in str(e) for e in losers)
        listed = [p["name"] for p in (await players[0].call("ensemble"))["players"]]
        assert listed.count("lead") == 1 and len(listed) == 10


async def test_rename_carries_cues_sent_to_the_old_name(temporal, ensemble):
    async with play(temporal, ensemble) as a, play(temporal, ensemble) as b:
        old = await b.name()
        await a.call("cue", to=old, message="before the rename")
        await b.call("set_name", name="bob")
        await a.call("cue", to="bob", message="after the rename")
        got = [await b.next_cue(), await b.next_cue()]
        assert [g["content"] for g in got] == ["before the rename", "after the rename"]
        with pytest.raises(asyncio.TimeoutError):
            await b.next_cue(timeout=1)
        with pytest.raises(ToolFailed, match=f"no player named '{old}'"):
            await a.call("cue", to=old, message="old name is gone")


async def test_name_from_the_environment(temporal, ensemble):
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="builder") as a:
        assert await a.name() == "builder"
        # a second session asking for the same name joins under a temporary one and is told why
        async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="builder") as b:
            notice = await b.next_cue()
            assert notice["meta"]["kind"] == "notice"
            assert "'builder' is taken" in notice["content"] and "set_name" in notice["content"]
            assert len(await b.name()) == 8


async def test_a_dead_holder_does_not_keep_its_name_forever(temporal, ensemble):
    """A name whose session crashed (no goodbye) is taken over by the next claimant."""
    import os
    import signal

    import tempo

    env = {"CLAUDE_TEMPO_PLAYER_NAME": "phoenix", "CLAUDE_TEMPO_POLL_WAIT": "1"}
    async with play(temporal, ensemble, **env) as a:
        assert await a.name() == "phoenix"
        client = await tempo.connect(tempo.Config(address=temporal.address))
        _, holder = await tempo.find_player(client, ensemble, "phoenix")
        os.kill(holder.pid, signal.SIGKILL)
        await asyncio.sleep(3)  # longer than its poll wait (1 s) + grace (1 s): it is gone
        async with play(temporal, ensemble, **env) as b:
            assert await b.name() == "phoenix"
            _, taker = await tempo.find_player(client, ensemble, "phoenix")
            assert taker.pid not in (0, holder.pid)
