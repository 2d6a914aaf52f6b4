"""Scheduled cues: real Temporal Schedules fire, cue the players, and are paused, resumed, deleted.

The time-skipping test server cannot help here: it does not implement schedules (CreateSchedule is
"unimplemented"). Long intervals are checked on the dev server instead, by backfilling a day.
"""

import asyncio
import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import ScheduleOverlapPolicy

import tempo
from conftest import ROOT, ToolFailed, play, wait_until
from tempo_workflows import ENSEMBLE, schedule_id

pytestmark = pytest.mark.anyio

CONDUCTOR = {"CLAUDE_TEMPO_CONDUCTOR": "true"}
ALLOW_ALL = ScheduleOverlapPolicy.ALLOW_ALL  # fire on demand even while the last fire is still finishing


async def client_for(temporal):
    from temporalio.client import Client

    return await Client.connect(temporal.address, namespace="default")


@contextlib.asynccontextmanager
async def players(temporal, ensemble: str, *names: str, **env: str):
    """Start one `tempo serve` session per name, each joined under its name; yield them in order."""
    async with contextlib.AsyncExitStack() as stack:
        started = [await stack.enter_async_context(play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME=n, **env)) for n in names]
        for player, name in zip(started, names):
            assert await player.name() == name
        yield started


async def next_of_kind(player, kind: str, timeout: float = 15) -> dict:
    while True:
        cue = await player.next_cue(timeout)
        if cue["meta"]["kind"] == kind:
            return cue


async def no_more(player, kind: str = "scheduled", wait: float = 2) -> None:
    """Nothing more of `kind` arrives within `wait` seconds."""
    with pytest.raises(asyncio.TimeoutError):
        await next_of_kind(player, kind, timeout=wait)


async def fire(client, sid: str) -> None:
    """Fire the schedule now. Temporal names a fire's run after its time to the second: one per second."""
    await asyncio.sleep(1.01 - datetime.now().microsecond / 1e6)
    await client.get_schedule_handle(sid).trigger(overlap=ALLOW_ALL)


async def listed(player) -> dict:
    return {s["name"]: s for s in (await player.call("schedules"))["schedules"]}


async def gone(client, sid: str) -> bool:
    from temporalio.service import RPCError

    try:
        await client.get_schedule_handle(sid).describe()
        return False
    except RPCError:
        return True


# -- every: it fires, the players get their cues ---------------------------------------------


async def test_every_schedule_fires_and_its_targets_receive_their_cues(temporal, ensemble):
    async with players(temporal, ensemble, "alice", "bob", "carol", TZ="UTC") as (alice, bob, carol):
        before = datetime.now(timezone.utc)
        made = await alice.call("schedule", name="standup", to="bob", every="30m", message="what changed?",
                                why="keep the team in sync")
        assert made["schedule_id"] == schedule_id(ensemble, "standup") == f"claude-tempo-schedule-{ensemble}-standup"
        assert (made["to"], made["creator"], made["when"], made["paused"]) == (["bob"], "alice", "every 30m", False)
        assert made["spec"] == {"every": "30m"}
        runs = [datetime.fromisoformat(t) for t in made["next_runs"]]
        assert len(runs) == 3 and all(b - a == timedelta(minutes=30) for a, b in zip(runs, runs[1:]))
        assert timedelta(minutes=29) < runs[0] - before <= timedelta(minutes=30, seconds=5)  # one interval from now

        # It is a real Temporal Schedule: memo (creator, why), the ensemble's attribute, our workflow.
        client = await client_for(temporal)
        handle = client.get_schedule_handle(made["schedule_id"])
        desc = await handle.describe()
        memo = await desc.memo()
        assert (memo["creator"], memo["why"]) == ("alice", "keep the team in sync")
        assert desc.typed_search_attributes.get(ENSEMBLE) == ensemble
        assert desc.schedule.action.workflow == "ScheduledCueWorkflow"

        for round in range(2):  # the schedule fires (on demand: its interval is half an hour)
            await fire(client, handle.id)
            cue = await next_of_kind(bob, "scheduled")
            assert cue["content"] == "what changed?"
            assert (cue["meta"]["from"], cue["meta"]["source"]) == ("alice", "standup")
        await no_more(carol, wait=0.5)

        await alice.call("schedule", name="all-hands", to="all", every="1h", message="status, everyone")
        await fire(client, schedule_id(ensemble, "all-hands"))
        for p in (bob, carol):
            assert (await next_of_kind(p, "scheduled"))["meta"]["source"] == "all-hands"
        await no_more(alice, wait=1)  # `all` is everyone but the one who scheduled it

        pair = await alice.call("schedule", name="pair", to="@bob, @carol", every="1h", message="m")  # as `cue` reads it
        assert pair["to"] == ["bob", "carol"]


async def test_a_long_interval_fires_on_every_run_time(temporal, ensemble):
    """A 6-hour schedule over a whole day, backfilled (Temporal runs those fires now): four cues."""
    from temporalio.client import ScheduleBackfill

    async with players(temporal, ensemble, "alice", "bob") as (alice, bob):
        made = await alice.call("schedule", name="shift", to="bob", every="6h", message="shift change")
        runs = [datetime.fromisoformat(t) for t in made["next_runs"]]
        assert [b - a for a, b in zip(runs, runs[1:])] == [timedelta(hours=6)] * 2
        client = await client_for(temporal)
        handle = client.get_schedule_handle(made["schedule_id"])
        day_ago = runs[0] - timedelta(days=1, seconds=1)  # the start is exclusive: four run times in the range
        await handle.backfill(ScheduleBackfill(start_at=day_ago, end_at=runs[0] - timedelta(seconds=1),
                                               overlap=ALLOW_ALL))
        ids = {(await next_of_kind(bob, "scheduled", timeout=30))["meta"]["message_id"] for _ in range(4)}
        assert len(ids) == 4  # one cue per run time, none twice
        await no_more(bob, wait=1)


# -- cron and time zones -----------------------------------------------------------------------


def next_weekdays_at(hour: int, tz: str, count: int) -> list[str]:
    """The next `count` weekday times at `hour`:00 in `tz`, computed here, not by Temporal."""
    zone, now = ZoneInfo(tz), datetime.now(timezone.utc)
    day, times = now.astimezone(zone).date(), []
    while len(times) < count:
        t = datetime(day.year, day.month, day.day, hour, tzinfo=zone)
        if t > now and t.weekday() < 5:
            times.append(t.isoformat())
        day += timedelta(days=1)
    return times


async def test_cron_and_time_zone_give_the_right_next_runs(temporal, ensemble):
    async with players(temporal, ensemble, "alice", TZ="Asia/Tokyo") as (alice,):
        paris = await alice.call("schedule", name="eod", cron="0 17 * * 1-5", timezone="Europe/Paris", message="summary")
        assert (paris["timezone"], paris["to"]) == ("Europe/Paris", ["alice"])  # no `to`: a reminder to myself
        assert paris["next_runs"] == next_weekdays_at(17, "Europe/Paris", 3)
        ny = await alice.call("schedule", name="ny", cron="0 9 * * 1-5", timezone="America/New_York", message="standup")
        assert ny["next_runs"] == next_weekdays_at(9, "America/New_York", 3)

        local = await alice.call("schedule", name="tokyo", at="09:30", message="coffee")  # the machine's zone: TZ
        expected = datetime.now(ZoneInfo("Asia/Tokyo")).replace(hour=9, minute=30, second=0, microsecond=0)
        if expected <= datetime.now(timezone.utc):
            expected = (expected + timedelta(days=1)).replace(hour=9, minute=30)
        assert (local["timezone"], local["next_runs"]) == ("Asia/Tokyo", [expected.isoformat()])
        exact = await alice.call("schedule", name="exact", at="2099-03-01T12:00:00+05:30", timezone="UTC", message="far")
        assert exact["next_runs"] == ["2099-03-01T06:30:00+00:00"]


async def test_bad_input_is_a_clear_error(temporal, ensemble):
    async with players(temporal, ensemble, "alice", "bob") as (alice, bob):
        cases = {
            "no player named 'nobody'": dict(to="nobody", every="1h"),
            "players: alice, bob": dict(to="bob,nobody", every="1h"),
            "invalid cron expression '61 * * * *': Minute is not in range": dict(cron="61 * * * *"),
            "invalid cron expression 'every day at 5'": dict(cron="every day at 5"),
            "unknown time zone 'Mars/Olympus'": dict(cron="0 17 * * *", timezone="Mars/Olympus"),
            "is in the past": dict(at="2020-01-01T09:00"),
            "is less than 5s ahead": dict(after="1s"),
            "invalid time 'tomorrow-ish'": dict(at="tomorrow-ish"),
            "the interval '30s' is under 1 minute": dict(every="30s"),
            "invalid interval 'often'": dict(every="often"),
            "exactly one of at, after, every or cron": dict(every="1h", after="5m"),
        }
        for expected, when in cases.items():
            with pytest.raises(ToolFailed) as failed:
                await alice.call("schedule", name="bad", message="x", **when)
            assert expected in str(failed.value), (when, str(failed.value))
        with pytest.raises(ToolFailed, match="invalid schedule name"):
            await alice.call("schedule", name="no spaces", every="1h", message="x")
        await alice.call("schedule", name="twice", every="1h", message="x")
        with pytest.raises(ToolFailed, match="already has a schedule named 'twice'"):
            await alice.call("schedule", name="twice", every="2h", message="y")
        assert list(await listed(alice)) == ["twice"]  # nothing half-made by the refusals
        with pytest.raises(ToolFailed, match="no schedule named 'nope'.*schedules: twice"):
            await alice.call("schedules", action="pause", name="nope")


# -- pause, resume, delete -----------------------------------------------------------------


async def test_pause_resume_and_delete(temporal, ensemble):
    async with players(temporal, ensemble, "alice") as (alice,):
        await alice.call("schedule", name="ping", every="10m", message="ping")
        await alice.call("schedule", name="pong", every="20m", message="pong")
        client = await client_for(temporal)
        ping = client.get_schedule_handle(schedule_id(ensemble, "ping"))

        paused = await alice.call("schedules", action="pause", name="ping")
        assert paused["done"] == "paused ping" and paused["schedules"][0]["paused"] is True
        desc = await ping.describe()
        assert desc.schedule.state.paused and desc.schedule.state.note == "paused by alice"
        await wait_until(lambda: listed_state(alice, {"ping": True, "pong": False}))

        resumed = await alice.call("schedules", action="resume", name="ping")
        assert resumed["schedules"][0]["paused"] is False and not (await ping.describe()).schedule.state.paused
        await wait_until(lambda: listed_state(alice, {"ping": False, "pong": False}))

        deleted = await alice.call("schedules", action="delete", name="ping")
        assert deleted["done"] == "deleted ping"
        assert await gone(client, schedule_id(ensemble, "ping"))
        await wait_until(lambda: listed_state(alice, {"pong": False}))


async def listed_state(player, expected: dict) -> bool:
    return {name: s["paused"] for name, s in (await listed(player)).items()} == expected


# -- one-offs ------------------------------------------------------------------------------


async def test_a_one_off_fires_once_and_is_gone(temporal, ensemble):
    async with players(temporal, ensemble, "alice", "bob") as (alice, bob):
        made = await alice.call("schedule", name="deploy-check", to="bob", after="6s", message="check the deploy")
        assert len(made["next_runs"]) == 1 and made["when"].startswith("after 6s")
        cue = await next_of_kind(bob, "scheduled", timeout=30)  # fired by Temporal's clock, not triggered
        assert (cue["content"], cue["meta"]["source"]) == ("check the deploy", "deploy-check")
        client = await client_for(temporal)
        await wait_until(lambda: gone(client, made["schedule_id"]), timeout=15)
        await wait_until(lambda: listed_state(alice, {}))
        await no_more(bob, wait=3)


# -- a target gone at fire time ------------------------------------------------------------------


async def test_a_gone_target_cue_goes_to_the_conductor_else_back_to_its_creator(temporal, ensemble):
    client = await client_for(temporal)
    async with players(temporal, ensemble, "alice") as (alice,):
        async with players(temporal, ensemble, "bob"):
            await alice.call("schedule", name="nudge", to="bob", every="1h", message="still there?")
        await wait_until(lambda: player_gone(client, ensemble, "bob"))

        await fire(client, schedule_id(ensemble, "nudge"))  # no conductor: back to alice
        back = await next_of_kind(alice, "undelivered")
        assert (back["content"], back["meta"]["for"], back["meta"]["source"]) == ("still there?", "bob", "nudge")

        async with play(temporal, ensemble, **CONDUCTOR) as conductor:
            await conductor.name()
            await fire(client, schedule_id(ensemble, "nudge"))
            handed = await next_of_kind(conductor, "undelivered")
            assert (handed["content"], handed["meta"]["for"], handed["meta"]["from"]) == ("still there?", "bob", "alice")
            await no_more(alice, kind="undelivered", wait=1)


async def player_gone(client, ensemble: str, name: str) -> bool:
    import tempo

    return await tempo.find_player(client, ensemble, name) is None


# -- ensembles are isolated ------------------------------------------------------------------


async def test_schedules_of_one_ensemble_are_invisible_to_another(temporal, ensemble):
    other = f"{ensemble}-x"
    async with players(temporal, ensemble, "alice") as (alice,), players(temporal, other, "alice") as (stranger,):
        await alice.call("schedule", name="daily", every="1d", message="mine")
        await alice.call("schedule", name="x-weekly", every="7d", message="mine too")
        await stranger.call("schedule", name="daily", every="1d", message="theirs")
        await wait_until(lambda: listed_names(alice, ["daily", "x-weekly"]))
        await wait_until(lambda: listed_names(stranger, ["daily"]))
        assert (await listed(stranger))["daily"]["message"] == "theirs"

        await stranger.call("schedules", action="pause", name="daily")
        assert (await listed(alice))["daily"]["paused"] is False
        # `{ensemble}` + `x-weekly` and `{ensemble}-x` + `weekly` share one ID: the attribute tells them apart
        with pytest.raises(ToolFailed, match=f"no schedule named 'weekly' in ensemble '{other}'"):
            await stranger.call("schedules", action="delete", name="weekly")
        assert "x-weekly" in await listed(alice)


async def listed_names(player, names: list[str]) -> bool:
    return sorted(await listed(player)) == names


@pytest.mark.parametrize("to", ["bob", "@bob", " @bob, carol ,@bob", ["@bob", "carol"], "all", "role:player, @dave", ""])
def test_schedule_reads_recipients_as_cue_does(to):
    """One reading of `to` for `cue` and `schedule`: `@bob` is bob in both (schedule refused it)."""
    assert tempo._split_targets(to, "me") == (list(dict.fromkeys(tempo.recipient_words(to))) or ["me"])
    assert all("@" not in t for t in tempo._split_targets(to, "me"))


# -- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        ("schedule add standup --to all --message hi --every 30m",
         {"schedule": True, "add": True, "<schedule>": "standup", "<ensemble>": None, "--to": "all", "--every": "30m"}),
        ("schedule add eod team --to=a,b --message=m --cron=0_17_*_*_1-5 --timezone Europe/Paris --why w",
         {"<schedule>": "eod", "<ensemble>": "team", "--to": "a,b", "--cron": "0 17 * * 1-5", "--timezone": "Europe/Paris", "--why": "w"}),
        ("schedule add once --to bob --message m --at 17:00", {"--at": "17:00", "--after": None, "--every": None}),
        ("schedule list team --json", {"schedule": True, "list": True, "<ensemble>": "team", "--json": True}),
        ("schedule pause standup", {"pause": True, "resume": False, "delete": False, "<schedule>": "standup"}),
        ("schedule delete standup team", {"delete": True, "<schedule>": "standup", "<ensemble>": "team"}),
    ],
)
def test_usage_parses(argv, expected):
    args = tempo._parse_args([a.replace("_", " ") for a in argv.split()])
    assert {k: args[k] for k in expected} == expected


async def test_cli_add_list_pause_resume_delete(cli, temporal, ensemble):
    env = {"TEMPORAL_ADDRESS": temporal.address}
    async with players(temporal, ensemble, "bob") as (bob,):
        added = await asyncio.to_thread(
            cli, "schedule", "add", "review", ensemble, "--to", "bob", "--message", "review the open PRs",
            "--cron", "30 8 * * 1", "--timezone", "Europe/Paris", "--why", "monday routine", **env)
        assert added.returncode == 0, added.stderr
        assert f"claude-tempo-schedule-{ensemble}-review" in added.stdout and "next runs: " in added.stdout

        async def listing() -> list:
            done = await asyncio.to_thread(cli, "schedule", "list", ensemble, "--json", **env)
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout)["schedules"]

        view = (await wait_until(listing))[0]
        assert (view["name"], view["creator"], view["why"], view["to"]) == ("review", "cli", "monday routine", ["bob"])
        assert view["next_runs"][0].endswith(("+01:00", "+02:00")) and "T08:30:00" in view["next_runs"][0]

        client = await client_for(temporal)
        await fire(client, view["schedule_id"])
        cue = await next_of_kind(bob, "scheduled")
        assert (cue["content"], cue["meta"]["from"], cue["meta"]["source"]) == ("review the open PRs", "cli", "review")

        for verb, paused in (("pause", True), ("resume", False)):
            done = await asyncio.to_thread(cli, "schedule", verb, "review", ensemble, **env)
            assert done.returncode == 0 and done.stdout.startswith(f"{verb}d schedule review"), done.stderr
            assert (await client.get_schedule_handle(view["schedule_id"]).describe()).schedule.state.paused is paused
        table = await asyncio.to_thread(cli, "schedule", "list", ensemble, **env)
        assert table.stdout.startswith("review") and "cron 30 8 * * 1" in table.stdout

        deleted = await asyncio.to_thread(cli, "schedule", "delete", "review", ensemble, **env)
        assert deleted.returncode == 0 and await gone(client, view["schedule_id"])
        again = await asyncio.to_thread(cli, "schedule", "delete", "review", ensemble, **env)
        assert again.returncode == 1 and again.stderr.startswith("tempo: error: no schedule named 'review'")
        bad = await asyncio.to_thread(cli, "schedule", "add", "x", ensemble, "--to", "bob", "--message", "m",
                                      "--every", "5s", **env)
        assert bad.returncode == 1 and "under 1 minute" in bad.stderr


# -- the real Claude Code ----------------------------------------------------------------------


class StandInModel:
    """The Anthropic API as Claude Code calls it, scripted: wait for tempo's tools, call one, then stop."""

    def __init__(self, tool: str, arguments: dict):
        self.tool, self.arguments, self.result = tool, arguments, None
        model = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                data = model.answer(body) if "count_tokens" not in self.path else {"input_tokens": 1}
                stream = body.get("stream") and "count_tokens" not in self.path
                raw = model.events(data) if stream else json.dumps(data).encode()
                self.send_response(200)
                self.send_header("content-type", "text/event-stream" if stream else "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, body: dict) -> dict:
        tools = {t.get("name") for t in body.get("tools", [])}
        results = {c.get("tool_use_id"): c for m in body.get("messages", []) if isinstance(m.get("content"), list)
                   for c in m["content"] if isinstance(c, dict) and c.get("type") == "tool_result"}
        if "call" in results:
            self.result = self.result or results["call"]
            return self.message({"type": "text", "text": "done"}, "end_turn")
        if self.tool in tools:
            return self.message({"type": "tool_use", "id": "call", "name": self.tool, "input": self.arguments}, "tool_use")
        if "WaitForMcpServers" in tools and "wait" not in results:  # -p mode does not wait for MCP servers itself
            return self.message({"type": "tool_use", "id": "wait", "name": "WaitForMcpServers", "input": {}}, "tool_use")
        return self.message({"type": "text", "text": "no tempo tools"}, "end_turn")

    @staticmethod
    def message(block: dict, stop: str) -> dict:
        return {"id": "msg", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [block],
                "stop_reason": stop, "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}

    @staticmethod
    def events(message: dict) -> bytes:
        block = message["content"][0]
        start = {**block, "input": {}} if block["type"] == "tool_use" else {"type": "text", "text": ""}
        delta = ({"type": "input_json_delta", "partial_json": json.dumps(block["input"])} if block["type"] == "tool_use"
                 else {"type": "text_delta", "text": block["text"]})
        events = [
            {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}},
            {"type": "content_block_start", "index": 0, "content_block": start},
            {"type": "content_block_delta", "index": 0, "delta": delta},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None}, "usage": {"output_tokens": 1}},
            {"type": "message_stop"},
        ]
        return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


async def test_real_claude_code_schedules_a_cue_that_reaches_a_player(temporal, ensemble, tmp_path):
    claude = ROOT / "node_modules" / ".bin" / "claude"
    key = "sk-ant-api03-" + "k" * 40
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True, "customApiKeyResponses": {"approved": [key[-20:]], "rejected": []},
        "projects": {str(project): {"hasTrustDialogAccepted": True, "enableAllProjectMcpServers": True}},
    }))
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": {"claude-tempo": {"command": sys.executable, "args": [str(ROOT / "tempo.py"), "serve"]}}}))
    arguments = {"name": "wrap-up", "to": "bob", "message": "summarize your reviews", "cron": "0 17 * * 1-5",
                 "timezone": "Europe/Paris", "why": "daily wrap-up"}
    model = StandInModel("mcp__claude-tempo__schedule", arguments)
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", ""), "ANTHROPIC_BASE_URL": model.url, "ANTHROPIC_API_KEY": key,
           "TEMPORAL_ADDRESS": temporal.address, "CLAUDE_TEMPO_ENSEMBLE": ensemble, "CLAUDE_TEMPO_PLAYER_NAME": "lead",
           "CLAUDE_TEMPO_LOG": "WARNING", "PYTHONPATH": str(ROOT), "DISABLE_AUTOUPDATER": "1"}
    try:
        async with players(temporal, ensemble, "bob") as (bob,):
            done = await asyncio.to_thread(subprocess.run, [str(claude), "-p", "set up the daily wrap-up", "--allowedTools", "mcp__claude-tempo"],
                                           cwd=project, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0 and model.result, (done.stdout, done.stderr)
            answer = json.loads(model.result["content"] if isinstance(model.result["content"], str) else model.result["content"][0]["text"])
            assert (answer["schedule_id"], answer["creator"]) == (schedule_id(ensemble, "wrap-up"), "lead")
            assert answer["next_runs"] == next_weekdays_at(17, "Europe/Paris", 3)
            client = await client_for(temporal)
            await fire(client, answer["schedule_id"])  # the session that made it has ended: bob's worker runs the fire
            cue = await next_of_kind(bob, "scheduled")
            assert (cue["content"], cue["meta"]["from"], cue["meta"]["source"]) == ("summarize your reviews", "lead", "wrap-up")
    finally:
        model.server.shutdown()
