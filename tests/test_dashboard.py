"""`tempo dashboard`: the page, its event stream, its send box and its token, in a real browser too."""

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from temporalio import workflow

import tempo
from conftest import chromium, dashboard, play, tools_path, wait_until

pytestmark = pytest.mark.anyio

CONDUCTOR = {"CLAUDE_TEMPO_CONDUCTOR": "true"}


def check_script(page: str, policy: str) -> None:
    """The page's one script is what its policy lets run, and node parses it (a syntax error is a blank page)."""
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    code = [body for attributes, body in scripts if "application/json" not in attributes]
    assert [a for a, _ in scripts if "application/json" not in a] == [f' nonce="{nonce}"'], "a script the policy would block"
    assert not re.search(r"<[^>]+\son[a-z]+=", page.replace(code[0], "")), "an inline handler the policy would block"
    node = shutil.which("node", path=tools_path())
    assert node, "node is needed (Claude Code and the Copilot CLI run on it)"
    with tempfile.NamedTemporaryFile("w", suffix=".js", delete=False) as f:
        f.write(code[0])
    try:
        checked = subprocess.run([node, "--check", f.name], capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(f.name)
    assert checked.returncode == 0, checked.stderr


def test_the_page_script_passes_node_check():
    """The page as served, without a server: its placeholders filled as the handler fills them."""
    page = tempo.DASHBOARD_PAGE.replace("NONCE", "n0nce").replace("INITIAL_STATE", "{}")
    check_script(page, "script-src 'nonce-n0nce'")


class Stream:
    """The dashboard's server-sent events, read as a page reads them."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.cards: dict[str, dict] = {}  # the players as the page has them now
        self.log: list[tuple[str, object]] = []  # every event so far, in order

    async def next(self) -> tuple[str, object]:
        event, data = "message", []
        async for line in self.lines:
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                data = json.loads("\n".join(data))
                if event == "snapshot":
                    self.cards = {p["name"]: p for p in data["players"]}
                elif event == "player":
                    self.cards[data["name"]] = data
                elif event == "left":
                    self.cards.pop(data["name"], None)
                return event, data
        raise EOFError("the event stream ended")

    async def until(self, predicate, timeout: float = 10) -> tuple[str, object]:
        """The first event, received already or still to come, for which `predicate(event, data)` is true."""
        async def scan():
            for event, data in self.log:
                if predicate(event, data):
                    return event, data
            while True:
                event, data = await self.next()
                self.log.append((event, data))
                if predicate(event, data):
                    return event, data
        return await asyncio.wait_for(scan(), timeout)


@contextlib.asynccontextmanager
async def events(http: httpx.AsyncClient, board):
    async with http.stream("GET", f"{board.base}/events", params={"token": board.token}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


def exchange(kind: str, text: str):
    return lambda event, data: event in ("exchanges", "snapshot") and any(
        e["kind"] == kind and e["text"] == text for e in (data["feed"] if event == "snapshot" else data))


async def test_every_request_needs_the_token_and_no_secret_reaches_the_page(temporal, ensemble, tmp_path):
    secret = "sk-test-NEVER-SHOWN-4242"
    async with play(temporal, ensemble, **CONDUCTOR) as conductor, \
            dashboard(temporal, ensemble, tmp_path, TEMPORAL_API_KEY=secret, TEMPORAL_TLS="false") as board, \
            httpx.AsyncClient(timeout=10) as http:
        await conductor.name()
        for url, params in ((f"{board.base}/", {}), (f"{board.base}/", {"token": "wrong"}),
                            (f"{board.base}/events", {}), (f"{board.base}/events", {"token": board.token[:-1]})):
            refused = await http.get(url, params=params)
            assert refused.status_code == 403 and "token" in refused.text
        refused = await http.post(f"{board.base}/send", json={"to": "conductor", "text": "x"})
        assert refused.status_code == 403
        refused = await http.post(f"{board.base}/send", json={"to": "conductor", "text": "x"}, headers={"X-Tempo-Token": "no"})
        assert refused.status_code == 403

        await conductor.call("set_part", part="lead </script><img src=x onerror=alert(1)>")
        page = await http.get(board.url)
        assert page.status_code == 200 and "<title>tempo dashboard</title>" in page.text
        # The first paint needs no event stream: the state is in the page, and a part cannot end its script.
        initial = page.text.split('<script type="application/json" id="initial">')[1].split("</script>")[0]
        assert [p["name"] for p in json.loads(initial)["players"]] == ["conductor"]
        # another player's words are shown defused (tags cannot open), as on every other path
        assert json.loads(initial)["players"][0]["part"] == "lead ‹/script>‹img src=x onerror=alert(1)>"
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        check_script(page.text, policy)
        assert page.headers["referrer-policy"] == "no-referrer"
        markup = page.text.replace(initial, "")  # the state may hold links (the Web UI's), never fetched
        assert "http://" not in markup and "https://" not in markup  # nothing fetched from elsewhere
        async with events(http, board) as stream:
            _, snapshot = await stream.until(lambda e, d: e == "snapshot")
            assert [p["name"] for p in snapshot["players"]] == ["conductor"]
            assert secret not in page.text and secret not in json.dumps(snapshot)
        assert secret[-8:] not in page.text + json.dumps(snapshot)


async def test_stream_delivers_a_new_cue_and_a_part_change(temporal, ensemble, tmp_path):
    async with play(temporal, ensemble, **CONDUCTOR) as conductor, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="builder", cwd=str(tmp_path)) as builder, \
            dashboard(temporal, ensemble, tmp_path) as board, httpx.AsyncClient(timeout=None) as http:
        await conductor.name()
        await builder.name()
        async with events(http, board) as stream:
            _, snapshot = await stream.until(lambda e, d: e == "snapshot")
            cards = {p["name"]: p for p in snapshot["players"]}
            assert set(cards) == {"conductor", "builder"} and snapshot["conductor"] is True
            card = cards["builder"]
            assert (card["role"], card["directory"], card["agent"]) == ("player", str(tmp_path), "claude")
            assert card["host"] and card["started"] and card["workflow_id"] == f"claude-session-{ensemble}-builder"
            assert card["link"].endswith(f"/workflows/claude-session-{ensemble}-builder/") is False
            assert f"/namespaces/default/workflows/claude-session-{ensemble}-builder/" in card["link"]

            await builder.call("set_part", part="wiring the checkout form")
            _, card = await stream.until(lambda e, d: e == "player" and d["part"] == "wiring the checkout form")
            assert card["name"] == "builder"
            await stream.until(exchange("part", "wiring the checkout form"))

            await conductor.call("cue", to="builder", message="please add the card form")
            _, batch = await stream.until(exchange("cue", "please add the card form"))
            cue = next(e for e in batch if e["text"] == "please add the card form")
            assert (cue["sender"], cue["recipient"], cue["direction"]) == ("conductor", "builder", "out")

            await builder.call("report", type="blocker", message="the sandbox key is missing")
            _, batch = await stream.until(exchange("report", "the sandbox key is missing"))
            assert next(e for e in batch if e["kind"] == "report")["source"] == "blocker"

            await builder.call("cue", to="conductor", message="done with the form")
            await stream.until(exchange("cue", "done with the form"))
            # liveness comes from the player's `presence` query, read as `tempo status` reads it
            if "last_contact" not in stream.cards["builder"]:
                await stream.until(lambda e, d: e == "player" and "last_contact" in stream.cards["builder"])
            card = stream.cards["builder"]
            assert card["away"] is False and card["waiting"] == 0 and card["last_contact"]

            # what it holds on the board: a badge on its card
            await conductor.call("task_add", tasks=[{"title": "card form"}])
            await builder.call("task_claim", id="1")
            _, card = await stream.until(lambda e, d: e == "player" and d["name"] == "builder" and d.get("tasks") == "1")
            await stream.until(lambda e, d: e == "board" and d == {"claimed": 1})  # the header's board column


async def test_send_box_reaches_the_conductor_and_players(temporal, ensemble, tmp_path):
    async with play(temporal, ensemble, **CONDUCTOR) as conductor, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="tester") as tester, \
            dashboard(temporal, ensemble, tmp_path) as board, httpx.AsyncClient(timeout=10) as http:
        await conductor.name()
        await tester.name()
        send = lambda body: http.post(f"{board.base}/send", json=body, headers={"X-Tempo-Token": board.token})  # noqa: E731

        answer = await send({"to": "conductor", "text": "summarize the sprint"})
        assert answer.status_code == 200 and answer.json() == {"ok": True, "to": "conductor", "kind": "command"}
        while (cue := await conductor.next_cue())["meta"]["kind"] != "command":
            pass
        assert (cue["content"], cue["meta"]["source"], cue["meta"]["from"]) == ("summarize the sprint", "dashboard", "dashboard")

        answer = await send({"to": "tester", "text": "run the e2e suite"})
        assert answer.status_code == 200 and answer.json()["kind"] == "cue"
        cue = await tester.next_cue()
        assert (cue["content"], cue["meta"]["from"]) == ("run the e2e suite", "dashboard")

        answer = await send({"to": "nobody", "text": "hello"})
        assert answer.status_code == 400
        assert "no player named 'nobody'" in answer.json()["error"] and "tester" in answer.json()["error"]
        for bad in ({"to": "tester", "text": "  "}, {"to": "bad name!", "text": "x"}, {"text": "x"}):
            answer = await send(bad)
            assert answer.status_code == 400 and answer.json()["ok"] is False
        assert (await http.post(f"{board.base}/send", content=b"not json", headers={"X-Tempo-Token": board.token})).status_code == 400

        # the command is in the conductor's history, so it shows in the feed
        async with events(http, board) as stream:
            await stream.until(exchange("command", "summarize the sprint"))


async def test_without_a_conductor_the_feed_comes_from_the_roster(temporal, ensemble, tmp_path):
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="solo") as solo, \
            dashboard(temporal, ensemble, tmp_path) as board, httpx.AsyncClient(timeout=None) as http:
        await solo.name()
        async with events(http, board) as stream:
            _, snapshot = await stream.until(lambda e, d: e == "snapshot")
            assert snapshot["conductor"] is False and [p["name"] for p in snapshot["players"]] == ["solo"]
            async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="pair") as pair:
                await pair.name()
                await stream.until(lambda e, d: e == "player" and d["name"] == "pair")
                await stream.until(lambda e, d: e == "exchanges" and any(x["kind"] == "joined" and x["sender"] == "pair" for x in d))
                await pair.call("set_part", part="pairing on the parser")
                await stream.until(exchange("part", "pairing on the parser"))
            await stream.until(lambda e, d: e == "left" and d["name"] == "pair")
            await stream.until(exchange("left", "pair left"))


async def test_exchanges_arrive_once_across_the_conductors_continue_as_new(temporal, ensemble, tmp_path):
    async with play(temporal, ensemble, CLAUDE_TEMPO_CUES_PER_RUN="3", **CONDUCTOR) as conductor, \
            dashboard(temporal, ensemble, tmp_path) as board, httpx.AsyncClient(timeout=None) as http:
        await conductor.name()
        async with events(http, board) as stream:
            await stream.until(lambda e, d: e == "snapshot")
            send = lambda text: http.post(f"{board.base}/send", json={"to": "conductor", "text": text},  # noqa: E731
                                          headers={"X-Tempo-Token": board.token})
            texts = [f"command {i}" for i in range(8)]
            for text in texts:
                assert (await send(text)).status_code == 200
            seen: list[str] = []

            def collect(event, data) -> bool:
                if event == "exchanges":
                    seen.extend(e["text"] for e in data if e["kind"] == "command")
                return len(seen) >= len(texts)

            await stream.until(collect, timeout=30)
            assert seen == texts


async def test_open_flag_opens_the_browser_on_the_url(temporal, ensemble, tmp_path):
    opened = tmp_path / "opened"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
    script.chmod(0o755)
    async with dashboard(temporal, ensemble, tmp_path, "--open", BROWSER=f"{script} %s") as board:
        await wait_until(lambda: opened.exists() and opened.read_text(), timeout=15)
        assert opened.read_text() == board.url


async def test_port_taken_and_bad_port_are_clear_errors(temporal, ensemble, tmp_path, cli):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("dashboard", ensemble, "--port", str(port), TEMPORAL_ADDRESS=temporal.address)
        assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    result = cli("dashboard", "--port", "http", TEMPORAL_ADDRESS=temporal.address)
    assert result.returncode == 1 and "not a port number" in result.stderr
    result = cli("dashboard", ensemble, TEMPORAL_ADDRESS=f"127.0.0.1:{tempo._free_port()}")
    assert result.returncode == 1 and "Temporal is unreachable" in result.stderr and "tempo server" in result.stderr
    assert "Traceback" not in result.stderr


def test_away_is_said_as_tempo_status_says_it():
    """One rule for the card and `tempo status`: a held poll is active; a cue left waiting or a poll long over is away."""
    def ago(seconds: float) -> str:
        return (datetime.now(timezone.utc) - timedelta(seconds=seconds)).isoformat()

    def presence(contact: float, polling: bool = False, pending: int = 0, oldest: float | None = None) -> dict:
        return {"last_contact": ago(contact), "polling": polling, "wait": 300.0, "pending": pending,
                "oldest": ago(oldest) if oldest is not None else ""}

    held = tempo._liveness(presence(200, polling=True))
    assert held == {"last_contact": held["last_contact"], "waiting": 0, "away": False, "away_for": 0}  # a poll is held
    assert tempo._liveness(presence(2, pending=1, oldest=1))["away"] is False  # being pushed
    stuck = tempo._liveness(presence(5, pending=2, oldest=tempo.AWAY_GRACE + 30))
    assert (stuck["waiting"], stuck["away"]) == (2, True)  # cues left waiting: the session is gone or asleep
    assert tempo._liveness(presence(340))["away"] is True  # no poll since the last one ended
    for p in (presence(200, polling=True), presence(2, pending=1, oldest=1), presence(340), presence(305)):
        assert tempo._liveness(p)["away"] == (tempo.away_since(p) != 0) == tempo.away_fields(tempo.away_since(p))["away"]


async def test_browser_shows_cards_and_new_exchanges_without_a_reload(temporal, ensemble, tmp_path):
    repo = tmp_path / "repo"  # api's checkout: reservations name paths of a repository
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    async with play(temporal, ensemble, **CONDUCTOR) as conductor, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="api", cwd=str(repo)) as api, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="web") as web, \
            dashboard(temporal, ensemble, tmp_path) as board, chromium(tmp_path / "profile") as browser:
        for p in (conductor, api, web):
            await p.name()
        await api.call("set_part", part="payment API")
        tab = await browser.open(board.url)
        names = "[...document.querySelectorAll('.card .name')].map(n => n.textContent).join(',')"
        assert await tab.wait_for(f"{names} === 'conductor,api,web' && {names}") == "conductor,api,web"
        assert await tab.wait_for("document.querySelector('[data-name=api] .part').textContent") == "payment API"
        # the cards come with the page itself; the stream connects after them
        assert await tab.wait_for("document.getElementById('live').textContent.includes('live')")
        await tab.eval("window.sameDocument = 42")

        await web.call("report", type="blocker", message="CI has no sandbox key")
        await tab.wait_for("[...document.querySelectorAll('#feed li')].some(li => li.textContent.includes('CI has no sandbox key'))")
        first = await tab.eval("document.querySelector('#feed li').textContent")
        assert "BLOCKER" in first and "web → conductor" in first
        assert "BLOCKER" in await tab.wait_for("document.querySelector('[data-name=web] .alert')?.textContent")
        assert "CI has no sandbox key" in await tab.eval("document.getElementById('attention').textContent")
        await api.call("report", type="question", message="retry on 409?")
        assert "QUESTION" in await tab.wait_for("document.querySelector('[data-name=api] .alert')?.textContent")
        await conductor.call("cue", to="api", message="yes, retry once")  # an answered question is closed
        await tab.wait_for("!document.querySelector('[data-name=api] .alert')")
        await web.call("report", type="result", message="sandbox key added, CI green")  # so is a blocker, by a result
        await tab.wait_for("!document.querySelector('[data-name=web] .alert') && document.getElementById('attention').hidden")
        await web.call("set_part", part="checkout page")
        await tab.wait_for("document.querySelector('[data-name=web] .part').textContent === 'checkout page'")
        async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="docs") as docs:
            await docs.name()
            await tab.wait_for("document.querySelectorAll('.card').length === 4")
        await tab.wait_for("document.querySelectorAll('.card').length === 3")
        # nothing reloaded: the same document, one navigation
        assert await tab.eval("window.sameDocument") == 42
        assert await tab.eval("performance.getEntriesByType('navigation').length") == 1

        # the send box, as a person uses it
        await tab.eval("document.getElementById('to').value = 'conductor'; "
                       "document.getElementById('text').value = 'ship it from the page'; "
                       "document.querySelector('#send button').click()")
        while (cue := await conductor.next_cue())["meta"]["kind"] != "command":
            pass
        assert (cue["content"], cue["meta"]["source"]) == ("ship it from the page", "dashboard")
        await tab.wait_for("document.getElementById('sent').textContent.includes('sent to conductor')")

        # the board: its column in the header, and on a card what that player holds (claimed tasks, reserved paths)
        await conductor.call("task_add", tasks=[{"title": "v2 routes"}, {"title": "v2 docs"}])
        await api.call("task_claim", id="1")
        await api.call("reserve", paths=["src/api/**"], reason="the v2 routes")
        counts = "document.getElementById('counts').textContent"
        assert "board: 1 open, 1 claimed" in await tab.wait_for(f"{counts}.includes('board: 1 open, 1 claimed') && {counts}")
        held = "document.querySelector('[data-name=api] dl').textContent"
        text = await tab.wait_for(f"{held}.includes('src/api/**!') && {held}")
        assert "tasksclaimed 1" in text and "reservedsrc/api/**!" in text, text
        assert "reserved" not in await tab.eval("document.querySelector('[data-name=web] dl').textContent")

        # a narrow window: one column, nothing wider than the window
        await tab.send("Emulation.setDeviceMetricsOverride", width=380, height=800, deviceScaleFactor=1, mobile=False)
        assert await tab.wait_for("document.documentElement.scrollWidth <= 380")
        columns = await tab.eval("getComputedStyle(document.querySelector('main')).gridTemplateColumns.split(' ').length")
        assert columns == 1


def test_links_go_to_the_web_ui_of_the_server_in_use(monkeypatch, tmp_path):
    monkeypatch.delenv("CLAUDE_TEMPO_UI", raising=False)
    local = tempo.Config(address="localhost:7233", home=str(tmp_path))
    assert tempo._temporal_ui(local) == "http://localhost:8233"  # start-dev's UI port
    cloud = tempo.Config(address="acct.a1b2c.tmprl.cloud:7233", namespace="acct.a1b2c", home=str(tmp_path))
    assert tempo._workflow_link(tempo._temporal_ui(cloud), cloud.namespace, "claude-session-x-api", "r1") == \
        "https://cloud.temporal.io/namespaces/acct.a1b2c/workflows/claude-session-x-api/r1/history"
    monkeypatch.setenv("CLAUDE_TEMPO_UI", "https://temporal.example.com/")
    assert tempo._temporal_ui(local) == "https://temporal.example.com"
    assert tempo._workflow_link("", "default", "w", "r") == ""


@workflow.defn(name="PlayerWorkflow", sandboxed=False)
class ConductorWithoutWatch:
    """A conductor as a worker older than the `watch` update runs it: history only by query."""

    def __init__(self) -> None:
        self.lines: list[dict] = []
        self.done = False

    @workflow.run
    async def run(self, info: dict) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "ended"

    @workflow.signal
    def command(self, command: dict) -> None:
        self.lines.append({"at": workflow.now().isoformat(), "direction": "in", "kind": "command",
                           "sender": command["source"], "recipient": "conductor", "text": command["text"],
                           "source": command["source"]})

    @workflow.signal
    def finish(self, request: dict) -> None:
        self.done = True

    @workflow.query
    def history(self) -> list:
        return self.lines


async def test_a_conductor_without_watch_is_read_through_its_history_query(temporal, ensemble, tmp_path):
    from temporalio.worker import Worker

    from tempo_workflows import PlayerInfo, search_attributes, workflow_id

    client = await tempo.connect(tempo.Config(address=temporal.address))
    queue = f"old-{ensemble}"
    info = PlayerInfo(ensemble=ensemble, name="conductor", role="conductor", host="old", started=tempo.utcnow())
    async with Worker(client, task_queue=queue, workflows=[ConductorWithoutWatch]):
        handle = await client.start_workflow(
            ConductorWithoutWatch.run, dataclasses.asdict(info), id=workflow_id(ensemble, "conductor"), task_queue=queue,
            search_attributes=search_attributes(info), memo={"info": dataclasses.asdict(info)})
        try:
            async with dashboard(temporal, ensemble, tmp_path) as board, httpx.AsyncClient(timeout=None) as http:
                async with events(http, board) as stream:
                    await stream.until(lambda e, d: e == "snapshot" and d["conductor"])
                    sent = await http.post(f"{board.base}/send", json={"to": "conductor", "text": "still heard"},
                                           headers={"X-Tempo-Token": board.token})
                    assert sent.status_code == 200
                    await stream.until(exchange("command", "still heard"))
        finally:
            await handle.signal(ConductorWithoutWatch.finish, {})
