"""Bursts: many cues at once reach their player once each, in each sender's order, by whichever path is live.

Five real `tempo serve` senders cue one player as fast as their `cue` calls return (one call at a
time each), the way a team answers its conductor at once. The player is a plain MCP client (every
cue pushed), a Claude Code session whose model is busy with its channel off (hooks and `listen`
carry the cues once it reads), or one whose channel pushes are never confirmed (`listen` drains).
"""

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

import pytest

from conftest import flagged_serve, play, wait_until

pytestmark = pytest.mark.anyio

SENDERS, PER_SENDER = 5, 40  # the bench sends 5 x 200; this is the same shape, sized for the suite
HISTORIES = Path(__file__).parent / "histories"


@contextlib.asynccontextmanager
async def sessions(temporal, ensemble: str, *envs: dict):
    """Real `tempo serve` sessions started all at once, each joined; yields their Players in order.
    (An MCP client is entered and left in one task, so each lives in a task of its own.)"""
    stop = asyncio.Event()
    joined = [asyncio.get_running_loop().create_future() for _ in envs]

    async def hold(env: dict, future: asyncio.Future) -> None:
        try:
            async with play(temporal, ensemble, **env) as player:
                await player.name()
                future.set_result(player)
                await stop.wait()
        except BaseException as e:
            if not future.done():
                future.set_exception(e)
            raise

    tasks = [asyncio.create_task(hold(env, future)) for env, future in zip(envs, joined)]
    try:
        yield list(await asyncio.gather(*joined))
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def burst(senders_: list, to: str, per_sender: int = PER_SENDER) -> list[dict]:
    """Each sender cues `to` `per_sender` times, one call at a time, all senders at once; every call's result."""
    async def one(k: int, sender) -> list[dict]:
        return [await sender.call("cue", to=to, message=f"s{k}-{i}") for i in range(per_sender)]

    return [r for results in await asyncio.gather(*(one(k, s) for k, s in enumerate(senders_))) for r in results]


def expected_texts(count: int = SENDERS, per_sender: int = PER_SENDER) -> set[str]:
    return {f"s{k}-{i}" for k in range(count) for i in range(per_sender)}


def in_sender_order(texts: list[str], count: int = SENDERS) -> bool:
    """Each sender's cues came in the order it sent them (senders interleave freely)."""
    for k in range(count):
        mine = [int(t.split("-")[1]) for t in texts if t.startswith(f"s{k}-")]
        if mine != sorted(mine):
            return False
    return True


async def listen_all(player) -> list[dict]:
    """`listen` until nothing more is left: every page, oldest first."""
    messages = []
    while True:
        page = await player.call("listen")
        messages += page["messages"]
        if not page["more"]:
            return messages


async def all_seen(sender, results: list[dict]) -> dict[str, str]:
    """message_id -> how it was seen, once every cue in `results` is seen."""
    rows = (await sender.call("receipts", message_ids=[r["message_id"] for r in results]))["receipts"]
    return {r["message_id"]: r["path"] for r in rows} if all(r["state"] == "seen" for r in rows) else {}


async def test_a_burst_reaches_each_kind_of_player_once_each_in_each_senders_order(temporal, ensemble):
    """Five senders burst into three players in turn: a plain MCP client (pushed), a Claude Code session
    whose model is busy and whose channel is off (hooks and `listen` once it reads), and one whose channel
    pushes are never confirmed (`listen` drains). No sender waits for a receipt, none fails."""
    async with sessions(temporal, ensemble, *[{}] * SENDERS,
                        {"CLAUDE_TEMPO_PLAYER_NAME": "plain"},
                        {"CLAUDE_TEMPO_PLAYER_NAME": "busy", "CLAUDE_CODE_SESSION_ID": str(uuid.uuid4())},
                        {"CLAUDE_TEMPO_PLAYER_NAME": "unconfirmed", "CLAUDE_CODE_SESSION_ID": str(uuid.uuid4()),
                         "command": flagged_serve()}) as players:
        team, (plain, busy, unconfirmed) = players[:SENDERS], players[SENDERS:]
        await pushed_to_a_plain_client(team, plain)
        await kept_for_a_busy_model_then_read(team, busy)
        await pushed_unconfirmed_then_listened(team, unconfirmed)


async def pushed_to_a_plain_client(team: list, plain) -> None:
    results = await burst(team, "plain")
    assert all(r["seen"] is None for r in results)  # nobody waited for a receipt
    got = [(await plain.next_cue(timeout=60))["content"] for _ in range(SENDERS * PER_SENDER)]
    assert set(got) == expected_texts() and len(got) == len(set(got))
    assert in_sender_order(got)
    with pytest.raises(asyncio.TimeoutError):  # nothing twice
        await plain.next_cue(timeout=1.5)
    seen = await wait_until(lambda: all_seen(team[0], results[:PER_SENDER]), timeout=30)
    assert set(seen.values()) == {"channel"}


async def kept_for_a_busy_model_then_read(team: list, busy) -> None:
    """No hook, no `listen` for a while: nothing is lost meanwhile; then `listen` hands it all out, once each."""
    results = await burst(team, "busy")

    async def unread() -> int:
        listing = await team[0].call("ensemble")
        return next(p["unread"] for p in listing["players"] if p["name"] == "busy")

    await wait_until(lambda: _equals(unread(), SENDERS * PER_SENDER), timeout=30)
    await asyncio.sleep(3)  # still busy: nothing shown, nothing dropped
    assert await unread() == SENDERS * PER_SENDER
    texts = [m["text"] for m in await listen_all(busy)]
    assert set(texts) == expected_texts() and len(texts) == len(set(texts))
    assert in_sender_order(texts)
    assert (await busy.call("listen"))["messages"] == []
    paths = await wait_until(lambda: all_seen(team[1], results[PER_SENDER:2 * PER_SENDER]), timeout=30)
    assert set(paths.values()) == {"listen"}
    await wait_until(lambda: _equals(unread(), 0), timeout=30)


async def pushed_unconfirmed_then_listened(team: list, unconfirmed) -> None:
    """Pushed on a channel whose events may never reach the model (nothing confirms them): every cue
    stays unread, and `listen` returns each once, page by page, in each sender's order."""
    me = next(p for p in (await unconfirmed.call("ensemble"))["players"] if p.get("you"))
    assert "channel:unknown" in me["delivery"]  # pushed on its channel, as a session started with the flag is
    results = await burst(team, "unconfirmed")
    pushed = [(await unconfirmed.next_cue(timeout=60))["content"] for _ in range(SENDERS * PER_SENDER)]
    assert set(pushed) == expected_texts()
    texts = [m["text"] for m in await listen_all(unconfirmed)]
    assert set(texts) == expected_texts() and len(texts) == len(set(texts))
    assert in_sender_order(texts)
    assert (await unconfirmed.call("listen"))["messages"] == []
    paths = await wait_until(lambda: all_seen(team[2], results[2 * PER_SENDER:3 * PER_SENDER]), timeout=30)
    assert set(paths.values()) == {"listen"}


async def _equals(value, expected) -> bool:
    return (await value) == expected


# -- what a burst leaves in the player's history --------------------------------------------------


async def test_a_burst_upserts_the_memo_at_most_once_per_workflow_task(temporal, ensemble):
    """One memo upsert per cue was half of a burst's history, and a long history replays slowly."""
    import tempo

    async with sessions(temporal, ensemble, {"CLAUDE_TEMPO_PLAYER_NAME": "hub"}, {}, {}) as (hub, *team):
        await asyncio.gather(*(burst([s], "hub", 25) for s in team))
        for _ in range(50):
            await hub.next_cue(timeout=60)
        client = await tempo.connect(tempo.Config(address=temporal.address))
        kinds = []  # over every run of the player (it may have continued as new meanwhile)
        async for run in client.list_workflows(f"WorkflowId = 'claude-session-{ensemble}-hub'"):
            history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
            kinds += [e.WhichOneof("attributes") for e in history.events]
        memos = kinds.count("workflow_properties_modified_event_attributes")
        arrivals = ("workflow_execution_signaled_event_attributes", "workflow_execution_update_accepted_event_attributes")
        assert sum(kinds.count(k) for k in arrivals) >= 50  # each cue came in by a signal or a `deliver` update
        assert 0 < memos <= kinds.count("workflow_task_completed_event_attributes")


async def test_a_history_recorded_before_the_memo_patch_replays():
    """Players that ran before `memo-once-per-task` replay as they ran: one memo upsert per change.
    The history was recorded with tempo_workflows.py of b66a6e3 (three cues, polls, receipts, an end)."""
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer

    from tempo_workflows import PlayerWorkflow

    raw = (HISTORIES / "player-before-memo-once.json").read_text()
    kinds = [e["eventType"] for e in json.loads(raw)["events"]]
    twice = "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED," * 2
    assert twice in ",".join(kinds) + ","  # two cues in one workflow task, two upserts: what the patch changed
    await Replayer(workflows=[PlayerWorkflow]).replay_workflow(
        WorkflowHistory.from_json("claude-session-rec-bob", raw))
