"""The conductor: its public API (`command`, `history`), reports, terminate, one per ensemble."""

import asyncio
import contextlib
import io
import json
import shlex

import pytest

import tempo
from conftest import ROOT, ToolFailed, play
from tempo_workflows import workflow_id

pytestmark = pytest.mark.anyio

CONDUCTOR = {"CLAUDE_TEMPO_CONDUCTOR": "true"}


async def temporal_cli(temporal, *args: str) -> str:
    """Run the real `temporal` CLI against the test server; return its stdout."""
    proc = await asyncio.create_subprocess_exec(
        tempo.temporal_binary(), *args, "--address", temporal.address,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    return stdout.decode()


async def plain_client(temporal):
    """A client that knows nothing of tempo: no dataclasses, only names on the wire."""
    from temporalio.client import Client

    return await Client.connect(temporal.address, namespace="default")


async def next_of_kind(player, kind: str) -> dict:
    while True:
        cue = await player.next_cue()
        if cue["meta"]["kind"] == kind:
            return cue


async def test_commands_reports_and_cues_show_in_history(temporal, ensemble):
    wid = workflow_id(ensemble, "conductor")
    async with play(temporal, ensemble, **CONDUCTOR) as conductor:
        assert await conductor.name() == "conductor"
        async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="builder") as builder:
            assert await builder.name() == "builder"
            joined = await next_of_kind(conductor, "joined")
            assert joined["content"].startswith("builder joined")

            await temporal_cli(
                temporal, "workflow", "signal", "--workflow-id", wid, "--name", "command",
                "--input", json.dumps({"text": "ship the release", "source": "cli"}),
            )
            command = await next_of_kind(conductor, "command")
            assert command["content"] == "ship the release"
            assert command["meta"]["source"] == "cli" and command["meta"]["from"] == "cli"

            client = await plain_client(temporal)
            await client.get_workflow_handle(wid).signal("command", {"text": "status please", "source": "discord"})
            command = await next_of_kind(conductor, "command")
            assert (command["content"], command["meta"]["source"]) == ("status please", "discord")

            await conductor.call("cue", to="builder", message="build it")
            assert (await builder.next_cue())["content"] == "build it"
            sent = await builder.call("report", type="result", message="built")
            assert sent["sent"] and sent["to"] == "conductor"
            report = await next_of_kind(conductor, "report")
            assert (report["content"], report["meta"]["source"], report["meta"]["from"]) == ("built", "result", "builder")

            expected = [
                ("in", "joined", "builder"),
                ("in", "command", "ship the release"),
                ("in", "command", "status please"),
                ("out", "cue", "build it"),
                ("in", "report", "built"),
            ]

            def shape(history: list[dict]) -> list[tuple]:
                return [(h["direction"], h["kind"], h["text"].split(" (")[0].removesuffix(" joined") or h["text"])
                        for h in history]

            history = await client.get_workflow_handle(wid).query("history")
            assert shape(history) == expected
            assert [h["at"] for h in history] == sorted(h["at"] for h in history)
            assert history[1]["source"] == "cli" and history[3]["recipient"] == "builder"

            raw = await temporal_cli(temporal, "workflow", "query", "--workflow-id", wid, "--name", "history", "-o", "json")
            assert "ship the release" in raw and "status please" in raw and "build it" in raw


async def test_second_conductor_is_refused_naming_the_first(temporal, ensemble):
    async with play(temporal, ensemble, **CONDUCTOR) as first:
        assert await first.name() == "conductor"
        client = await plain_client(temporal)
        holder = (await tempo.find_player(client, ensemble, "conductor"))[1]
        async with play(temporal, ensemble, **CONDUCTOR) as second:
            with pytest.raises(ToolFailed) as refused:
                await second.call("ensemble")
            message = str(refused.value)
            assert "already has a conductor" in message
            for fact in (holder.host, holder.directory, str(holder.pid), holder.started):
                assert fact in message
            notice = await second.next_cue()
            assert "already has a conductor" in notice["content"]
        # the refused session took nothing: the first conductor still works
        listing = await first.call("ensemble")
        assert [p["name"] for p in listing["players"]] == ["conductor"]


async def test_report_without_conductor_is_a_noop_with_a_note(temporal, ensemble):
    async with play(temporal, ensemble) as player:
        result = await player.call("report", type="blocker", message="stuck on tests")
        assert result["sent"] is False and "no conductor" in result["note"]
        with pytest.raises(ToolFailed, match="unknown report type|validation"):
            await player.call("report", type="gossip", message="x")


async def test_terminate_ends_the_target_which_learns_why(temporal, ensemble):
    async with play(temporal, ensemble, **CONDUCTOR) as conductor:
        async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="doomed") as doomed:
            assert await doomed.name() == "doomed"
            with pytest.raises(ToolFailed, match="cannot terminate yourself"):
                await conductor.call("terminate", name="conductor")
            with pytest.raises(ToolFailed, match="no player named 'ghost'.*doomed"):
                await conductor.call("terminate", name="ghost")

            assert await conductor.call("terminate", name="doomed") == {"name": "doomed", "ended": True}
            listing = await conductor.call("ensemble")
            assert [p["name"] for p in listing["players"]] == ["conductor"]
            notice = await doomed.next_cue()
            assert notice["meta"]["kind"] == "notice" and "terminated by conductor" in notice["content"]
            with pytest.raises(ToolFailed, match="left the ensemble"):
                await doomed.call("cue", to="conductor", message="still here?")


async def test_readme_external_access_examples_run(temporal, ensemble):
    """docs/external-access.md's `temporal` CLI and Python examples work as written (server and ID swapped)."""
    section = (ROOT / "docs" / "external-access.md").read_text().split("## External access", 1)[1]
    shell = section.split("```sh\n", 1)[1].split("```", 1)[0]
    python = section.split("```python\n", 1)[1].split("```", 1)[0]
    wid = workflow_id(ensemble, "conductor")
    async with play(temporal, ensemble, **CONDUCTOR) as conductor:
        assert await conductor.name() == "conductor"
        commands = shell.replace("\\\n", " ").replace("claude-session-default-conductor", wid).strip().splitlines()
        outputs = []
        for command in commands:
            argv = shlex.split(command)
            assert argv[0] == "temporal"
            outputs.append(await temporal_cli(temporal, *argv[1:]))
        assert (await next_of_kind(conductor, "command"))["content"] == "summarize what everyone is doing"
        assert "summarize what everyone is doing" in outputs[-1]

        code = python.replace("localhost:7233", temporal.address).replace("claude-session-default-conductor", wid)
        code = code.replace("asyncio.run(main())", "")  # we are inside a running loop already
        namespace: dict = {}
        exec(compile(code, "docs/external-access.md", "exec"), namespace)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            await namespace["main"]()
        command = await next_of_kind(conductor, "command")
        assert (command["content"], command["meta"]["source"]) == ("run the tests", "dashboard")
        assert "in command cli -> conductor summarize what everyone is doing" in printed.getvalue()


async def test_the_conductor_is_told_when_a_player_leaves(temporal, ensemble):
    """A player's window closes (its MCP stdio ends): a clean leave, and the conductor hears of it."""
    async with play(temporal, ensemble, **CONDUCTOR) as conductor:
        async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="ui") as ui:
            assert await ui.name() == "ui"
            await next_of_kind(conductor, "joined")
        notice = await next_of_kind(conductor, "notice")
        assert notice["meta"]["from"] == "ui" and notice["content"].startswith("ui left the ensemble (")
        with pytest.raises(ToolFailed, match="no player named 'ui'"):
            await conductor.call("cue", to="ui", message="still there?")
