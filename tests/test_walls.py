"""Ensembles are walls: `shop` + `ops-bot` and `shop-ops` + `bot` share a workflow ID, and nothing crosses.

Each check ends with a cue the target does expect: had the crossing one arrived, it would come first.
"""

import pytest
from temporalio.client import Client

from conftest import ToolFailed, play
from tempo_workflows import workflow_id

pytestmark = pytest.mark.anyio


async def next_cue_text(player) -> str:
    """The text of the next cue that is not a join notice."""
    while True:
        cue = await player.next_cue()
        if cue["meta"]["kind"] != "joined":
            return cue["content"]


async def test_no_cue_claim_terminate_command_or_report_crosses_an_ensemble(temporal, ensemble):
    shop, shop_ops, shop_x = ensemble, f"{ensemble}-ops", f"{ensemble}-x"
    async with (
        play(temporal, shop, CLAUDE_TEMPO_PLAYER_NAME="ops-bot") as ops_bot,
        play(temporal, shop, CLAUDE_TEMPO_PLAYER_NAME="x-conductor") as x_conductor,
        play(temporal, shop, CLAUDE_TEMPO_PLAYER_NAME="clerk") as clerk,
        play(temporal, shop_ops, CLAUDE_TEMPO_PLAYER_NAME="sender") as sender,
        play(temporal, shop_x, CLAUDE_TEMPO_PLAYER_NAME="worker") as worker,
    ):
        assert await ops_bot.name() == "ops-bot" and await x_conductor.name() == "x-conductor"
        assert workflow_id(shop, "ops-bot") == workflow_id(shop_ops, "bot")  # the ambiguity this is about
        assert workflow_id(shop, "x-conductor") == workflow_id(shop_x, "conductor")

        # cue and broadcast to `bot` in shop-ops, where nobody has that name
        with pytest.raises(ToolFailed, match=rf"no player named 'bot' in ensemble '{shop_ops}'; players: nobody else"):
            await sender.call("cue", to="bot", message="CROSSED: cue")
        with pytest.raises(ToolFailed, match=r"nobody got the cue \(sender: that is you; bot: no player named 'bot'"):
            await sender.call("cue", to=["bot", "sender"], message="CROSSED: broadcast")
        # a name claim: refused, saying why and what to take instead
        with pytest.raises(ToolFailed) as refused:
            await sender.call("set_name", name="bot")
        assert str(refused.value).endswith(
            f"the name 'bot' cannot be taken in ensemble '{shop_ops}': its workflow ID {workflow_id(shop_ops, 'bot')} "
            f"is already the player 'ops-bot' of ensemble '{shop}'; pick another name (for example 'bot_2')")
        assert await sender.name() == "sender"
        # terminate
        with pytest.raises(ToolFailed, match=rf"no player named 'bot' in ensemble '{shop_ops}'"):
            await sender.call("terminate", name="bot")
        # a schedule whose target is `bot`
        with pytest.raises(ToolFailed, match=r"cannot schedule cues: no player named 'bot'"):
            await sender.call("schedule", name="nightly", to="bot", every="1h", message="CROSSED: schedule")
        # shop-x has no conductor: its ID is shop's player `x-conductor`; a report and a command find nobody
        result = await worker.call("report", type="question", message="CROSSED: report")
        assert result["sent"] is False and "no conductor" in result["note"]
        client = await Client.connect(temporal.address, namespace="default")
        await client.get_workflow_handle(workflow_id(shop_x, "conductor")).signal(
            "command", {"text": "CROSSED: command", "source": "cli"})

        await clerk.call("cue", to="ops-bot", message="for ops-bot")
        await clerk.call("cue", to="x-conductor", message="for x-conductor")
        assert await next_cue_text(ops_bot) == "for ops-bot"
        assert await next_cue_text(x_conductor) == "for x-conductor"
        assert [p["name"] for p in (await clerk.call("ensemble"))["players"]] == ["clerk", "ops-bot", "x-conductor"]

        # shop-x's conductor cannot take an ID that shop's player holds, and is told why
        async with play(temporal, shop_x, CLAUDE_TEMPO_CONDUCTOR="true") as conductor:
            with pytest.raises(ToolFailed) as refused:
                await conductor.call("ensemble")
            assert (f"the conductor cannot be taken in ensemble '{shop_x}': its workflow ID "
                    f"{workflow_id(shop_x, 'conductor')} is already the player 'x-conductor' of ensemble '{shop}'"
                    in str(refused.value))
        await clerk.call("cue", to="x-conductor", message="still here")
        assert await next_cue_text(x_conductor) == "still here"


async def test_a_schedule_name_whose_id_is_another_ensembles_is_refused(temporal, ensemble):
    shop, shop_ops = ensemble, f"{ensemble}-ops"
    async with play(temporal, shop) as a, play(temporal, shop_ops) as b:
        await a.call("schedule", name="ops-daily", every="1d", message="shop's own")
        with pytest.raises(ToolFailed) as refused:
            await b.call("schedule", name="daily", every="1d", message="shop-ops's")
        assert str(refused.value).endswith(
            f"the schedule name 'daily' cannot be used in ensemble '{shop_ops}': its ID claude-tempo-schedule-{shop}-ops-daily "
            f"is already a schedule of ensemble '{shop}'; pick another name (for example 'daily_2')")
        with pytest.raises(ToolFailed, match=rf"no schedule named 'daily' in ensemble '{shop_ops}'"):
            await b.call("schedules", action="delete", name="daily")
        assert (await a.call("schedules", action="pause", name="ops-daily"))["done"] == "paused ops-daily"  # still there


async def test_a_cue_after_the_id_changed_hands_does_not_cross(temporal, ensemble):
    """Later cues go straight to the run the first one checked; when another ensemble's player takes the ID, none follows."""
    shop, shop_ops = ensemble, f"{ensemble}-ops"
    async with play(temporal, shop_ops, CLAUDE_TEMPO_PLAYER_NAME="sender") as sender:
        async with play(temporal, shop_ops, CLAUDE_TEMPO_PLAYER_NAME="bot") as bot:
            assert await bot.name() == "bot"
            for text in ("one", "two"):  # the second goes by the checked run
                await sender.call("cue", to="bot", message=text)
                assert await next_cue_text(bot) == text
        async with play(temporal, shop, CLAUDE_TEMPO_PLAYER_NAME="ops-bot") as ops_bot:
            assert await ops_bot.name() == "ops-bot"  # it holds claude-session-{shop}-ops-bot = shop-ops's `bot`
            with pytest.raises(ToolFailed, match=rf"no player named 'bot' in ensemble '{shop_ops}'"):
                await sender.call("cue", to="bot", message="CROSSED")
            async with play(temporal, shop, CLAUDE_TEMPO_PLAYER_NAME="clerk") as clerk:
                await clerk.call("cue", to="ops-bot", message="for ops-bot")
                assert await next_cue_text(ops_bot) == "for ops-bot"
