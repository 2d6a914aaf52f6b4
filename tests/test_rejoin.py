"""Sessions find their way back: a session whose player ended while it was away rejoins by itself.

Away is simulated for real: the session's process is stopped (SIGSTOP, as a laptop's lid closing
stops it) past the shortened undelivered or idle timeout, or the dev server goes down; the network
cases, in namespaces of their own, are in test_netns.py.
"""

import asyncio
import contextlib
import json
import os
import signal

import pytest

import tempo
from conftest import play, wait_until
from tempo_workflows import PlayerInfo, PlayerInput, PlayerWorkflow, search_attributes, workflow_id

pytestmark = pytest.mark.anyio

AWAY = {"CLAUDE_TEMPO_UNDELIVERED_TIMEOUT": "2", "CLAUDE_TEMPO_POLL_WAIT": "3"}


@contextlib.contextmanager
def stopped(pid: int):
    """The session's process stopped (asleep) inside the block, running again after it."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def pid_of(client, ensemble: str, name: str) -> int:
    found = await wait_until(lambda: tempo.find_player(client, ensemble, name))
    return found[1].pid


async def ended(client, ensemble: str, name: str) -> bool:
    """True once the player's workflow has closed (its name is free)."""
    return not await tempo.still_running(client.get_workflow_handle(workflow_id(ensemble, name)))


async def until_kind(player, kind: str, timeout: float = 60) -> list[dict]:
    """Collect notifications up to and including the first of `kind`."""
    got = []
    while not got or got[-1]["meta"]["kind"] != kind:
        got.append(await player.next_cue(timeout=timeout))
    return got


async def handed_back(player) -> list[str]:
    """The texts of the hand-overs (kind `undelivered`) up to the first one."""
    return [c["content"] for c in await until_kind(player, "undelivered") if c["meta"]["kind"] == "undelivered"]


async def names(player) -> list[str]:
    return sorted(p["name"] for p in (await player.call("ensemble"))["players"])


async def test_a_stopped_session_rejoins_and_hears_what_went_to_the_conductor(temporal, ensemble):
    client = await tempo.connect(tempo.Config(address=temporal.address))
    async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="boss") as boss, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="sleeper", **AWAY) as sleeper:
        assert await sleeper.call("set_part", part="the parser")
        pid = await pid_of(client, ensemble, "sleeper")
        with stopped(pid):
            await boss.call("cue", to="sleeper", message="task one")
            handed = [c for c in await until_kind(conductor, "undelivered") if c["meta"]["kind"] == "undelivered"]
            assert [(c["content"], c["meta"]["for"]) for c in handed] == [("task one", "sleeper")]
            await wait_until(lambda: ended(client, ensemble, "sleeper"), timeout=40)
            assert "sleeper" not in await names(boss)

        told = await until_kind(sleeper, "notice")
        assert [c for c in told if c["meta"]["kind"] == "cue"] == []  # handed over: not also delivered as new
        notice = told[-1]["content"]
        assert "You were away from ensemble" in notice and "You are back as sleeper, part kept: the parser" in notice
        assert "- from boss, given to the conductor: task one" in notice
        await wait_until(lambda: names_include(boss, "sleeper"), timeout=15)
        listing = {p["name"]: p for p in (await boss.call("ensemble"))["players"]}
        assert listing["sleeper"]["part"] == "the parser"

        back = [c for c in await until_kind(conductor, "joined") if c["meta"]["kind"] == "joined"]
        assert back[-1]["content"].startswith("sleeper is back after ")
        history = await client.get_workflow_handle(workflow_id(ensemble, "conductor")).query(PlayerWorkflow.history)
        assert any(h.text.startswith("sleeper is back after ") for h in history)

        await boss.call("cue", to="sleeper", message="task two")  # traffic flows both ways again
        assert (await sleeper.next_cue())["content"] == "task two"
        await sleeper.call("cue", to="boss", message="on it")
        assert (await boss.next_cue())["content"] == "on it"


async def names_include(player, name: str) -> bool:
    return name in await names(player)


async def test_without_a_conductor_the_returning_session_hears_what_went_back_to_senders(temporal, ensemble):
    client = await tempo.connect(tempo.Config(address=temporal.address))
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="boss") as boss, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="sleeper", **AWAY) as sleeper:
        pid = await pid_of(client, ensemble, "sleeper")
        with stopped(pid):
            await boss.call("cue", to="sleeper", message="anyone there?")
            assert await handed_back(boss) == ["anyone there?"]
            await wait_until(lambda: ended(client, ensemble, "sleeper"), timeout=40)
        told = await until_kind(sleeper, "notice")
        assert [c for c in told if c["meta"]["kind"] == "cue"] == []
        assert "- from boss, returned to boss: anyone there?" in told[-1]["content"]
        await wait_until(lambda: names_include(boss, "sleeper"), timeout=15)
        await boss.call("cue", to="sleeper", message="welcome back")
        assert (await sleeper.next_cue())["content"] == "welcome back"


async def test_past_the_idle_timeout_the_session_rejoins_with_nothing_handed_over(temporal, ensemble):
    client = await tempo.connect(tempo.Config(address=temporal.address))
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="idler", CLAUDE_TEMPO_IDLE_TIMEOUT="2",
                    CLAUDE_TEMPO_POLL_WAIT="1") as idler, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="friend") as friend:
        pid = await pid_of(client, ensemble, "idler")
        with stopped(pid):
            await wait_until(lambda: ended(client, ensemble, "idler"), timeout=20)
        notice = (await until_kind(idler, "notice"))[-1]["content"]
        assert "You are back as idler" in notice and "no contact for 2s" in notice
        assert "No cue to you was handed over while you were away." in notice
        await wait_until(lambda: names_include(friend, "idler"), timeout=15)
        await friend.call("cue", to="idler", message="still there?")
        assert (await idler.next_cue())["content"] == "still there?"


async def test_a_name_taken_meanwhile_gives_a_temporary_name_and_says_so(temporal, ensemble):
    client = await tempo.connect(tempo.Config(address=temporal.address))
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="sleeper", **AWAY) as sleeper, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="bystander"):  # its worker runs the workflows
        pid = await pid_of(client, ensemble, "sleeper")
        with stopped(pid):
            await client.get_workflow_handle(workflow_id(ensemble, "sleeper")).signal(
                "cue", {"id": "c1", "sender": "outside", "text": "are you there?"})
            await wait_until(lambda: ended(client, ensemble, "sleeper"), timeout=40)
            async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="sleeper") as newcomer:
                assert await newcomer.name() == "sleeper"
                os.kill(pid, signal.SIGCONT)
                notice = (await until_kind(sleeper, "notice"))[-1]["content"]
                assert "name 'sleeper' is taken" in notice or "'sleeper'" in notice
                assert "temporary name" in notice
                me = await sleeper.name()
                assert me != "sleeper" and me in await names(newcomer)
                assert await newcomer.name() == "sleeper"  # the name taken on purpose stays taken


async def test_the_conductor_comes_back_as_the_conductor_with_its_history(temporal, ensemble):
    client = await tempo.connect(tempo.Config(address=temporal.address))
    async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true", **AWAY) as conductor, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="worker") as worker:
        await worker.call("report", type="result", message="first result")
        assert (await until_kind(conductor, "report"))[-1]["content"] == "first result"
        pid = await pid_of(client, ensemble, "conductor")
        with stopped(pid):
            await worker.call("report", type="question", message="while you slept")
            assert await handed_back(worker) == ["while you slept"]
            await wait_until(lambda: ended(client, ensemble, "conductor"), timeout=40)
        notice = (await until_kind(conductor, "notice"))[-1]["content"]
        assert "You are back as conductor (the conductor)" in notice and "returned to worker: while you slept" in notice
        await wait_until(lambda: names_include(worker, "conductor"), timeout=15)
        history = await client.get_workflow_handle(workflow_id(ensemble, "conductor")).query(PlayerWorkflow.history)
        assert "first result" in [h.text for h in history]
        await worker.call("report", type="result", message="after you woke")
        assert (await until_kind(conductor, "report"))[-1]["content"] == "after you woke"


async def test_deliberate_ends_stay_ends(temporal, ensemble):
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="boss") as boss, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="victim", **AWAY) as victim:
        assert await victim.name() == "victim"
        await boss.call("terminate", name="victim")
        notice = (await until_kind(victim, "notice"))[-1]["content"]
        assert notice == f"You have left the ensemble {ensemble}: terminated by boss."
        await asyncio.sleep(2)  # time enough for a (wrong) rejoin
        assert await names(boss) == ["boss"]
        with pytest.raises(Exception, match="left the ensemble"):
            await victim.call("ensemble")


async def test_status_shows_an_away_session_as_away(temporal, ensemble, cli):
    client = await tempo.connect(tempo.Config(address=temporal.address))
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="sleeper", CLAUDE_TEMPO_POLL_WAIT="1") as sleeper, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="awake") as awake:
        assert await sleeper.name() == "sleeper"
        pid = await pid_of(client, ensemble, "sleeper")
        with stopped(pid):
            await awake.call("cue", to="sleeper", message="wake up")
            await asyncio.sleep(tempo.AWAY_GRACE + 2)
            shown = cli("status", ensemble, TEMPORAL_ADDRESS=temporal.address)
        assert "1 active session, 1 away, in ensemble" in shown.stdout, shown.stdout
        rows = {line.split()[0]: line for line in shown.stdout.splitlines()[2:]}
        assert " away " in rows["sleeper"] and " active " in rows["awake"]  # STATE (then UNREAD, DELIVERY)
        assert (await sleeper.next_cue())["content"] == "wake up"
        again = cli("status", ensemble, "--json", TEMPORAL_ADDRESS=temporal.address)
        assert {p["name"]: p["away"] for p in json.loads(again.stdout)["players"]} == {
            "sleeper": False, "awake": False}

        # A player no session's worker answers for (its queue has none): nobody is there.
        info = PlayerInfo(ensemble=ensemble, name="ghost")
        ghost = await client.start_workflow(PlayerWorkflow.run, PlayerInput(info=info), id=workflow_id(ensemble, "ghost"),
                                            task_queue=f"nobody-{ensemble}", search_attributes=search_attributes(info),
                                            memo={"info": info.__dict__})
        try:
            listed = json.loads(cli("status", ensemble, "--json", TEMPORAL_ADDRESS=temporal.address).stdout)["players"]
            assert {p["name"]: (p["away"], p["away_for"]) for p in listed}["ghost"] == (True, None)
        finally:
            await ghost.terminate()


async def test_a_server_outage_past_the_timeout_with_a_cue_waiting(own_server, ensemble):
    """The dev server goes down while a cue waits, and stays down past the undelivered timeout."""
    loop = asyncio.get_running_loop()
    client = await tempo.connect(tempo.Config(address=own_server.address))
    async with play(own_server, ensemble, CLAUDE_TEMPO_PLAYER_NAME="boss") as boss, \
            play(own_server, ensemble, CLAUDE_TEMPO_PLAYER_NAME="sleeper", **AWAY) as sleeper:
        pid = await pid_of(client, ensemble, "sleeper")
        with stopped(pid):  # so that the cue is still waiting when the server goes down
            await boss.call("cue", to="sleeper", message="during the outage")
            own_server.process.kill()
            own_server.process.wait(10)
        await asyncio.sleep(4)  # down, past the 2 s timeout
        await loop.run_in_executor(None, own_server.start)

        # Exactly once: delivered to the sleeper, or returned to boss and the sleeper told so.
        to_sleeper = []
        while not any(c["meta"]["kind"] == "cue" for c in to_sleeper) and not any(
                c["meta"]["kind"] == "notice" for c in to_sleeper):
            to_sleeper.append(await sleeper.next_cue(timeout=60))
        to_sleeper += await drain(sleeper)
        delivered = [c for c in to_sleeper if c["meta"]["kind"] == "cue" and c["content"] == "during the outage"]
        notices = [c["content"] for c in to_sleeper if c["meta"]["kind"] == "notice"]
        returned = [c for c in await drain(boss) if c["meta"]["kind"] == "undelivered"]
        if delivered:
            assert len(delivered) == 1 and returned == [] and notices == []
        else:
            assert [c["content"] for c in returned] == ["during the outage"]
            assert len(notices) == 1 and "- from boss, returned to boss: during the outage" in notices[0]
        await wait_until(lambda: names_include(boss, "sleeper"), timeout=30)
        await boss.call("cue", to="sleeper", message="after the outage")
        assert (await sleeper.next_cue(timeout=30))["content"] == "after the outage"


async def drain(player, quiet: float = 2.0) -> list[dict]:
    got = []
    with contextlib.suppress(asyncio.TimeoutError):
        while True:
            got.append(await player.next_cue(timeout=quiet))
    return got
