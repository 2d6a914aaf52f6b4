"""The real Claude Code (its model scripted on loopback) runs tempo as its MCP server and cues players."""

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time

import pytest

from claude_code import (
    CLAUDE,
    Interactive,
    ScriptedModel,
    calls,
    claude_home,
    last_user_text,
    run_print,
    seen_means_seen,
    shown,
    tool_names,
    tool_use,
    transcript_shown,
    write_hooks,
    write_tempo_mcp_json,
)
from conftest import play, tempo_env, wait_until

pytestmark = pytest.mark.anyio

ALLOW_TEMPO = ["--allowedTools", "mcp__claude-tempo"]


@pytest.fixture
def model():
    with ScriptedModel() as scripted:
        yield scripted


def make_project(tmp_path, temporal, ensemble, model, **server_env: str):
    """A trusted project whose .mcp.json runs this tempo (as `tempo init` writes it); returns (dir, env)."""
    directory = tmp_path / "project"
    directory.mkdir()
    home = tmp_path / "home"
    env = claude_home(home, directory, model)
    server = tempo_env(temporal, ensemble, home=home, **server_env)  # serve inherits claude's PATH, the one claude_home controls
    write_tempo_mcp_json(directory, {k: v for k, v in server.items() if k != "PATH"})
    return directory, env


@pytest.fixture
def project(tmp_path, temporal, ensemble, model):
    return make_project(tmp_path, temporal, ensemble, model)


def cue_once(to: str, message: str):
    """A model that calls tempo's cue once, then answers "sent"."""

    def reply(body):
        if not calls(body, "mcp__claude-tempo__cue"):
            return [tool_use("mcp__claude-tempo__cue", {"to": to, "message": message})]
        return ["sent"]

    return reply


async def players(player, count: int) -> bool:
    return len((await player.call("ensemble"))["players"]) >= count


def test_claude_p_sees_tempos_tools(project, model):
    directory, env = project
    run = run_print("who is here?", cwd=directory, env=env, args=ALLOW_TEMPO)
    assert run.returncode == 0, run.stderr
    last = model.requests()[-1]  # the first may precede tempo's connection (the model then waits for it)
    assert {"mcp__claude-tempo__cue", "mcp__claude-tempo__ensemble", "mcp__claude-tempo__listen"} <= set(tool_names(last))
    assert "who is here?" in shown(last)


async def test_claude_p_cue_reaches_another_player(project, model, temporal, ensemble):
    directory, env = project
    async with play(temporal, ensemble) as bob:
        await bob.call("set_name", name="bob")
        model.reply = cue_once("bob", "hello from a real Claude Code")
        run = await asyncio.to_thread(run_print, "tell bob hello", cwd=directory, env=env, args=ALLOW_TEMPO)
        assert run.returncode == 0, run.stderr
        event = await bob.next_cue()
        assert event["content"] == "hello from a real Claude Code"
        result = json.loads(last_user_text(model.requests()[-1]).split("\n")[0])  # the cue tool's result, as the model read it
        assert result["message_id"] == event["meta"]["message_id"] and result["to"] == "bob"


async def test_interactive_session_cue_reaches_another_player(project, model, temporal, ensemble):
    directory, env = project
    async with play(temporal, ensemble) as bob:
        await bob.call("set_name", name="bob")
        model.reply = cue_once("bob", "hello from tmux")
        with Interactive(cwd=directory, env=env, args=ALLOW_TEMPO) as session:
            await asyncio.to_thread(session.wait_ready)
            await wait_until(lambda: players(bob, 2), timeout=30)  # its tempo serve has joined: the tools are there
            await asyncio.to_thread(session.type, "tell bob hello")
            event = await bob.next_cue(timeout=30)
            assert event["content"] == "hello from tmux"
            await asyncio.to_thread(session.wait_screen, "sent")


# -- Claude Code's hooks, as tempo's delivery relies on them (throwaway hooks, not tempo's) -----

HOOK = """
import json, os, sys, time
event = json.load(sys.stdin)
kind, arg, log = sys.argv[1], sys.argv[2], sys.argv[3]
with open(log, "a") as f:
    f.write(json.dumps({"pid": os.getpid(), "event": event, "session": os.environ.get("CLAUDE_CODE_SESSION_ID")}) + "\\n")
if kind == "context":
    print(json.dumps({"hookSpecificOutput": {"hookEventName": event["hook_event_name"], "additionalContext": arg}}))
elif kind == "block" and not event.get("stop_hook_active"):
    print(json.dumps({"decision": "block", "reason": arg}))
elif kind == "wait":  # a waiter: block until the file appears, then wake the model with its text
    deadline = time.monotonic() + 60
    while not os.path.exists(arg):
        if time.monotonic() > deadline:
            sys.exit(0)
        time.sleep(0.01)
    text = open(arg).read()
    os.unlink(arg)
    sys.stderr.write(text)
    sys.exit(2)
"""


@pytest.fixture
def hooks(project, tmp_path):
    """hooks({event: (kind, arg, extra keys)}) writes throwaway hooks; yields their log; ends leftover waiters."""
    directory, _ = project
    script, log = tmp_path / "hook.py", tmp_path / "hooks.jsonl"
    script.write_text(HOOK)

    def install(spec: dict) -> None:
        write_hooks(directory, {
            event: [{"hooks": [{"type": "command", "command": f"{sys.executable} {script} {kind} '{arg}' {log}", **extra}]}]
            for event, (kind, arg, extra) in spec.items()
        })

    def entries() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    install.entries = entries
    yield install
    for entry in entries():  # an armed async hook outlives claude: end ours
        try:
            os.kill(entry["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_hook_texts_reach_the_model_and_the_transcript(project, model, hooks):
    directory, env = project
    hooks({
        "UserPromptSubmit": ("context", "UPS-1", {}),
        "PostToolUse": ("context", "PTU-1", {}),
        "Stop": ("block", "STOP-1", {}),
    })
    model.reply = lambda body: None if calls(body, "mcp__claude-tempo__ensemble") else [tool_use("mcp__claude-tempo__ensemble")]
    run = run_print("hello", cwd=directory, env=env, args=ALLOW_TEMPO)
    assert run.returncode == 0, run.stderr
    first, *_, after_tool, after_stop = model.requests()
    assert "<system-reminder>\nUserPromptSubmit hook additional context: UPS-1\n</system-reminder>" in last_user_text(first)
    assert ("<system-reminder>\nPostToolUse:mcp__claude-tempo__ensemble hook additional context: PTU-1\n</system-reminder>"
            in last_user_text(after_tool))
    assert last_user_text(after_stop) == "Stop hook feedback:\nSTOP-1"
    events = hooks.entries()
    assert {e["event"]["session_id"] for e in events} == {e["session"] for e in events}  # = CLAUDE_CODE_SESSION_ID
    path = events[0]["event"]["transcript_path"]
    for text in ("UPS-1", "PTU-1", "STOP-1"):
        assert transcript_shown(path, text), text


# -- the delivery ladder, with the real client: channels are off here, so hooks carry every cue ----------


@pytest.fixture
def player_project(tmp_path, temporal, ensemble, model):
    """A project whose Claude Code session joins as "carol", with tempo's hooks installed by `tempo init`."""
    import subprocess
    import sys

    from conftest import ROOT

    directory, env = make_project(tmp_path, temporal, ensemble, model, CLAUDE_TEMPO_PLAYER_NAME="carol")
    init = subprocess.run([sys.executable, str(ROOT / "tempo.py"), "init", "-d", str(directory)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0 and "hooks created" in init.stdout, init.stderr
    return directory, env


def mentions(body: dict, text: str) -> bool:
    from claude_code import shown

    return text in shown(body)


async def seen_receipt(player, message_id: str):
    rows = (await player.call("receipts", message_ids=[message_id]))["receipts"]
    return rows[0] if rows[0]["state"] == "seen" else None


async def test_a_cue_wakes_an_idle_session_at_its_prompt(player_project, model, temporal, ensemble):
    """Started as `tempo start` starts it (with the channels flag), where channels are not available:
    the channel push is never confirmed, so the waiter wakes the idle model with the cue."""
    import tempo
    from claude_code import shown

    directory, env = player_project
    async with play(temporal, ensemble) as alice:
        await alice.call("set_name", name="alice")
        with Interactive(cwd=directory, env=env, args=[*tempo.CHANNELS_FLAG, *ALLOW_TEMPO]) as session:
            await asyncio.to_thread(session.wait_screen, "? for shortcuts")
            await wait_until(lambda: players(alice, 2), timeout=30)
            await asyncio.to_thread(session.type, "hello")  # one turn, so the Stop hook arms the waiter
            first = await asyncio.to_thread(model.wait_for, lambda b: mentions(b, "hello"))
            assert f"you are 'carol' in the ensemble '{ensemble}'" in shown(first)  # SessionStart told it
            assert tempo.INSTRUCTIONS in shown(first)  # whole: Claude Code cuts a server's instructions at 2 048 chars
            await asyncio.to_thread(session.wait_screen, "ok")
            await wait_until(lambda: _carol_has(alice, "waiter"), timeout=30)
            # Known before any cue (Claude Code logs its channel decision): the first cue skips the probe.
            await wait_until(lambda: _carol_has(alice, "channel:off"), timeout=15)
            await asyncio.sleep(3)  # the turn's Stop hook has run: the model idles at its prompt
            before = len(model.requests())
            sent = await alice.call("cue", to="carol", message="are you free to review PR 7?")
            woke = await asyncio.to_thread(model.wait_for, lambda b: mentions(b, "are you free to review PR 7?"),
                                           30, True, before)
            assert sent["message_id"] in shown(woke) and "alice" in shown(woke)
            receipt = await wait_until(lambda: seen_receipt(alice, sent["message_id"]), timeout=15)
            assert receipt["path"] == "waiter"
            await seen_means_seen(alice, model, {sent["message_id"]: "are you free to review PR 7?"})
            await wait_until(lambda: _carol_has(alice, "channel:off"), timeout=15)  # the push was never seen
            await asyncio.sleep(2)  # nothing shows it a second time: no further wake
            later = model.requests()[model.requests().index(woke) + 1:]
            assert all(shown(b).count(sent["message_id"]) == 1 for b in later)


def cue_mid_turn(sender, loop, text: str) -> dict:
    """From the scripted model's thread, while carol's model works: `sender` cues carol (once she has joined),
    and holds the model's answer until carol's workflow has the cue and her serve had a moment to take it:
    `cue` returns once the signal is in, and on a loaded machine the rest of a short turn can be quicker."""
    asyncio.run_coroutine_threadsafe(wait_until(lambda: players(sender, 2), timeout=30), loop).result(40)
    sent = asyncio.run_coroutine_threadsafe(sender.call("cue", to="carol", message=text), loop).result(30)
    asyncio.run_coroutine_threadsafe(wait_until(lambda: _carol_unread(sender), timeout=20), loop).result(30)
    time.sleep(0.5)
    return sent


async def _carol_unread(player) -> bool:
    listing = await player.call("ensemble")
    return any(p["name"] == "carol" and p["unread"] for p in listing["players"])


async def _carol_has(player, path: str) -> bool:
    listing = await player.call("ensemble")
    carol = next((p for p in listing["players"] if p["name"] == "carol"), None)
    return bool(carol) and path in carol["delivery"].split()


async def test_a_cue_to_a_working_interactive_session_reaches_its_model_before_it_idles(player_project, model, temporal, ensemble):
    """Mid-turn in tmux: the cue joins the model's context after its tool call (PostToolUse), or at its Stop."""
    directory, env = player_project
    loop = asyncio.get_running_loop()
    async with play(temporal, ensemble) as alice:
        await alice.call("set_name", name="alice")
        sent = {}

        def reply(body):
            if not sent:  # the turn starts: the cue comes in now, while the model works
                sent.update(cue_mid_turn(alice, loop, "the schema changed"))
                return [tool_use("mcp__claude-tempo__ensemble", {})]
            return ["done"]

        with Interactive(cwd=directory, env=env, args=ALLOW_TEMPO) as session:
            await asyncio.to_thread(session.wait_screen, "? for shortcuts")
            await wait_until(lambda: players(alice, 2), timeout=30)
            model.reply = reply
            await asyncio.to_thread(session.type, "who is here?")
            shown_it = await asyncio.to_thread(model.wait_for, lambda b: mentions(b, "the schema changed"), 30)
            assert shown(shown_it).count(sent["message_id"]) == 1
            receipt = await wait_until(lambda: seen_receipt(alice, sent["message_id"]), timeout=15)
            assert receipt["path"] in ("hook", "stop")  # before the session idled, not by waking it
            await seen_means_seen(alice, model, {sent["message_id"]: "the schema changed"})


async def test_a_cue_to_a_working_claude_p_reaches_it_before_the_run_ends(player_project, model, temporal, ensemble):
    """A cue arrives while the model works: a hook hands it over before `claude -p` ends, once."""
    from claude_code import shown

    directory, env = player_project
    loop = asyncio.get_running_loop()
    async with play(temporal, ensemble) as alice:
        await alice.call("set_name", name="alice")
        sent = {}

        def reply(body):
            if len(body["messages"]) == 1:  # the model starts working: the cue comes in now
                sent.update(cue_mid_turn(alice, loop, "stop: the API changed"))
                return [tool_use("mcp__claude-tempo__ensemble", {})]
            if "stop: the API changed" in shown(body) and "listen" not in json.dumps(body["messages"][-2:]):
                return [tool_use("mcp__claude-tempo__listen", {})]  # does listen show it again? it must not
            return ["done"]

        model.reply = reply
        run = await asyncio.to_thread(run_print, "check who is here", cwd=directory, env=env, args=ALLOW_TEMPO, timeout=90)
        assert run.returncode == 0, run.stderr
        bodies = model.requests()
        assert any(mentions(b, "stop: the API changed") for b in bodies), [shown(b)[-500:] for b in bodies]
        last = shown(bodies[-1])
        assert last.count(sent["message_id"]) == 1  # shown once; listen returned nothing more
        assert '{"messages":[],"more":0}' in last  # what listen answered: nothing, and nothing more waits
        receipt = await wait_until(lambda: seen_receipt(alice, sent["message_id"]), timeout=15)
        assert receipt["path"] in ("hook", "stop")
        await seen_means_seen(alice, model, {sent["message_id"]: "stop: the API changed"})


# -- Claude Code's limits tempo's delivery relies on (pinned: an upgrade that moves them fails here) ----------

LIMITS_HOOK = """
import json, sys
event = json.load(sys.stdin)
log = sys.argv[1]
with open(log, "a") as f:
    f.write(event["hook_event_name"] + "\\n")
if event["hook_event_name"] == "PostToolUse":
    n = open(log).read().count("PostToolUse")
    size = CAP if n == 1 else CAP + 1000
    print(json.dumps({"hookSpecificOutput": {"hookEventName": "PostToolUse",
                                             "additionalContext": f"CTX{n}-START " + "c" * size + f" CTX{n}-END"}}))
elif event["hook_event_name"] == "Stop":  # blocks every time, ignoring stop_hook_active, as tempo must not
    n = open(log).read().count("Stop")
    reason = ("REASON-START " + "r" * 33000 + " REASON-END") if n == 1 else f"BLOCK-{n}"
    print(json.dumps({"decision": "block", "reason": reason}))
"""


def test_claude_codes_limits_that_tempo_relies_on(project, model, tmp_path):
    """A hook's additionalContext of tempo's cap arrives whole, 1 000 chars more becomes a preview; a Stop
    reason of 33 000 chars arrives whole; Claude Code answers STOP_BLOCKS consecutive Stop blocks, not one more."""
    import tempo

    directory, env = project
    script, log = tmp_path / "limits.py", tmp_path / "limits.log"
    script.write_text(LIMITS_HOOK.replace("CAP", str(tempo.HOOK_CONTEXT_CAP - 20)))
    hook = [{"hooks": [{"type": "command", "command": f"{sys.executable} {script} {log}"}]}]
    write_hooks(directory, {"PostToolUse": hook, "Stop": hook})
    model.reply = lambda body: None if calls(body, "mcp__claude-tempo__ensemble") >= 2 else [tool_use("mcp__claude-tempo__ensemble")]
    run = run_print("hello", cwd=directory, env=env, args=ALLOW_TEMPO, timeout=120)
    assert run.returncode == 0, run.stderr
    texts = [last_user_text(b) for b in model.requests()]
    first = next(t for t in texts if "CTX1-START" in t)
    assert "CTX1-END" in first and "Output too large" not in first
    second = next(t for t in texts if "CTX2-START" in t or "additionalContext.txt" in t)
    assert "CTX2-END" not in second and "Output too large" in second  # a file path and a preview, not the text
    assert any("REASON-START" in t and "REASON-END" in t for t in texts)
    blocks = [t for t in texts if t.startswith("Stop hook feedback:")]
    assert len(blocks) == tempo.STOP_BLOCKS  # the next block was recorded, never answered; the run ended
    assert log.read_text().count("Stop") == tempo.STOP_BLOCKS + 1


# -- seen means seen: a receipt says `seen` only for what the model got, whole ---------------------------


async def test_a_long_cue_mid_tool_reaches_the_model_whole_before_it_is_seen(player_project, model, temporal, ensemble):
    """15 000 chars arrive while the model runs a tool: too long for a hook's context, they go whole by the Stop."""
    directory, env = player_project
    loop = asyncio.get_running_loop()
    long = "BEGIN " + " ".join(f"line-{i}" for i in range(2000)) + " THE END"
    assert len(long) > 15_000
    async with play(temporal, ensemble) as alice:
        await alice.call("set_name", name="alice")
        sent = {}

        def reply(body):
            if len(body["messages"]) == 1:
                sent.update(cue_mid_turn(alice, loop, long))
                return [tool_use("mcp__claude-tempo__ensemble", {})]
            return ["done"]

        model.reply = reply
        run = await asyncio.to_thread(run_print, "check who is here", cwd=directory, env=env, args=ALLOW_TEMPO, timeout=90)
        assert run.returncode == 0, run.stderr
        whole = [b for b in model.requests() if long in shown(b)]
        assert whole, [last_user_text(b)[:200] + " ... " + last_user_text(b)[-200:] for b in model.requests()]
        assert "Output too large" not in last_user_text(whole[0])
        receipt = await wait_until(lambda: seen_receipt(alice, sent["message_id"]), timeout=15)
        assert receipt["path"] == "stop"
        await seen_means_seen(alice, model, {sent["message_id"]: long})


async def test_a_chatty_player_and_a_recipient_that_keeps_stopping(player_project, model, temporal, ensemble):
    """A cue every half second while `claude -p` keeps stopping: each cue receipted seen is in a model request;
    none is lost (what the run did not show is handed back to its sender, undelivered, when the run ends)."""
    directory, env = player_project
    async with play(temporal, ensemble) as alice:
        await alice.call("set_name", name="alice")
        model.delay = 0.3
        # The first turns are held until the next cue is out, so that carol's first stops each find one
        # waiting (however slow the machine, the run goes on past four cues); later stops race the cues.
        cued = [threading.Event() for _ in range(40)]
        answers = []

        def reply(body):
            if "mcp__claude-tempo__ensemble" not in json.dumps(body["messages"]):
                cued[0].wait(30)
                return [tool_use("mcp__claude-tempo__ensemble", {})]
            answers.append(body)
            if len(answers) <= 4:
                cued[len(answers)].wait(30)
            return ["ok"]

        model.reply = reply
        texts: dict[str, str] = {}
        run = asyncio.create_task(asyncio.to_thread(run_print, "work", cwd=directory, env=env, args=ALLOW_TEMPO, timeout=120))
        await wait_until(lambda: players(alice, 2), timeout=40)
        for i in range(40):
            if run.done():
                break
            try:
                sent = await alice.call("cue", to="carol", message=f"chatty update {i}: " + "z" * (i * 37))
            except Exception:  # carol's run ended: nobody to cue
                break
            texts[sent["message_id"]] = f"chatty update {i}: " + "z" * (i * 37)
            cued[i].set()
            await asyncio.sleep(0.5)
        result = await run
        assert result.returncode == 0, result.stderr
        assert len(texts) >= 4
        with contextlib.suppress(AssertionError):  # the run's end hands back what it did not show: let it settle
            await wait_until(lambda: _all_settled(alice, texts), timeout=30)
        rows = (await alice.call("receipts", message_ids=list(texts)))["receipts"]
        await seen_means_seen(alice, model, texts)
        unseen = {r["message_id"] for r in rows if r["state"] != "seen"}
        returned = set()
        while unseen - returned:
            event = await alice.next_cue(timeout=30)
            if event["meta"].get("kind") == "undelivered":
                returned.add(event["meta"]["message_id"].removesuffix("-undelivered"))
        assert any(r["state"] == "seen" for r in rows)


async def _all_settled(sender, texts):
    rows = (await sender.call("receipts", message_ids=list(texts)))["receipts"]
    return rows if all(r["state"] in ("seen", "handed", "unknown") for r in rows) else None


async def test_a_nested_claude_p_gets_neither_the_players_name_nor_its_cues(player_project, model, temporal, ensemble):
    """carol's model runs another `claude -p` from its Bash tool (a sub-agent): its hooks find carol's serve
    through their ancestors, and get nothing; carol's own model gets the cue."""
    directory, env = player_project
    loop = asyncio.get_running_loop()
    nested = f"env -u CLAUDECODE {CLAUDE} -p nested-hello --strict-mcp-config"
    async with play(temporal, ensemble) as alice:
        await alice.call("set_name", name="alice")
        sent = {}

        def reply(body):
            if "nested-hello" in json.dumps(body["messages"][:1]):
                return ["nested ok"]
            if len(body["messages"]) == 1:
                sent.update(cue_mid_turn(alice, loop, "for carol's eyes only"))
                return [tool_use("Bash", {"command": nested, "description": "a sub-agent"})]
            return ["done"]

        model.reply = reply
        run = await asyncio.to_thread(run_print, "delegate", cwd=directory, env=env,
                                      args=["--allowedTools", "Bash", "mcp__claude-tempo"], timeout=120)
        assert run.returncode == 0, run.stderr
        bodies = model.requests()
        inner = [b for b in bodies if "nested-hello" in json.dumps(b["messages"][:1])]
        outer = [b for b in bodies if b not in inner]
        assert inner, "the nested claude -p never asked the model"
        assert not any("for carol's eyes only" in shown(b) or "you are 'carol'" in shown(b) for b in inner)
        assert any("for carol's eyes only" in shown(b) for b in outer)
        await wait_until(lambda: seen_receipt(alice, sent["message_id"]), timeout=15)
        await seen_means_seen(alice, model, {sent["message_id"]: "for carol's eyes only"})


def _serves_of(pid: int) -> set[int]:
    """The `tempo serve` processes Claude Code (process `pid`) runs now."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    parent = int(f.read().rsplit(b")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if parent == pid and b"serve" in argv:
                found.add(int(entry))
    return found


async def test_a_name_survives_mcp_reconnect(player_project, model, temporal, ensemble):
    """The model names itself alice; /mcp → Reconnect restarts tempo's server in the same Claude Code session:
    it comes back as alice, and a cue to alice reaches the model afterwards."""
    directory, env = player_project
    async with play(temporal, ensemble) as bob:
        await bob.call("set_name", name="bob")
        model.reply = lambda body: (["named"] if calls(body, "mcp__claude-tempo__set_name")
                                    else [tool_use("mcp__claude-tempo__set_name", {"name": "alice"})])
        with Interactive(cwd=directory, env=env, args=ALLOW_TEMPO) as session:
            await asyncio.to_thread(session.wait_ready, 60)
            await wait_until(lambda: players(bob, 2), timeout=40)
            await asyncio.to_thread(session.type, "call yourself alice")
            await wait_until(lambda: _has_player(bob, "alice"), timeout=30)
            claude = session.pane_pid()
            (old,) = await wait_until(lambda: _serves_of(claude), timeout=10)
            model.reply = None
            await asyncio.to_thread(session.type, "/mcp")
            await asyncio.to_thread(session.wait_screen, "Manage MCP servers", 20)
            await asyncio.sleep(0.5)
            session.keys("Enter")  # claude-tempo
            await asyncio.to_thread(session.wait_screen, "Reconnect", 20)
            for _ in range(6):  # the menu's order depends on the server's state: go down to Reconnect
                await asyncio.sleep(0.5)
                if any("❯" in line and "Reconnect" in line for line in session.screen().splitlines()):
                    break
                session.keys("Down")
            session.keys("Enter")
            try:
                new = await wait_until(lambda: (_serves_of(claude) - {old}), timeout=40)
            except AssertionError:
                raise AssertionError(f"no new serve; serves {_serves_of(claude)}, old {old}; screen:\n{session.screen()}")
            await wait_until(lambda: _has_player(bob, "alice", exactly=True), timeout=40)
            session.keys("Escape")
            sent = await wait_until(lambda: _cue_alice(bob, "welcome back, alice"), timeout=30)
            await asyncio.to_thread(session.type, "anything new?")
            await asyncio.to_thread(model.wait_for, lambda b: mentions(b, "welcome back, alice"), 40)
            await wait_until(lambda: seen_receipt(bob, sent["message_id"]), timeout=20)
            await seen_means_seen(bob, model, {sent["message_id"]: "welcome back, alice"})
            assert new and old not in _serves_of(claude)


async def _has_player(player, name: str, exactly: bool = False) -> bool:
    names = [p["name"] for p in (await player.call("ensemble"))["players"]]
    return name in names and (not exactly or len(names) == 2)


async def _cue_alice(sender, text: str):
    try:
        return await sender.call("cue", to="alice", message=text)
    except Exception:  # the name is between its two servers
        return None


async def test_a_burst_of_50_cues_reaches_a_working_claude_p_whole_and_once(player_project, model, temporal, ensemble):
    """Fifty cues arrive while the model works (more than one hook answer may carry): each reaches the
    model whole, once, within the client's limits (no hook text turned into a file preview)."""
    from claude_code import shown

    directory, env = player_project
    loop = asyncio.get_running_loop()
    texts = [f"burst cue {i:02d}: " + "please re-run the flaky suite and report " * 3 for i in range(50)]
    async with play(temporal, ensemble) as alice:
        await alice.call("set_name", name="alice")
        sent: list[dict] = []

        def reply(body):
            if not sent:  # the model starts working: the whole burst comes in now
                asyncio.run_coroutine_threadsafe(wait_until(lambda: players(alice, 2), timeout=30), loop).result(40)
                for text in texts:
                    sent.append(asyncio.run_coroutine_threadsafe(alice.call("cue", to="carol", message=text), loop).result(30))
                return [tool_use("mcp__claude-tempo__ensemble", {})]
            if not all(s["message_id"] in shown(body) for s in sent) and calls(body, "mcp__claude-tempo__ensemble") < 12:
                return [tool_use("mcp__claude-tempo__ensemble", {})]  # keeps working: each tool call may bring more
            return ["done"]

        model.reply = reply
        run = await asyncio.to_thread(run_print, "check who is here", cwd=directory, env=env, args=ALLOW_TEMPO, timeout=180)
        assert run.returncode == 0, run.stderr
        last = shown(model.requests()[-1])
        for s, text in zip(sent, texts):
            assert last.count(s["message_id"]) == 1, s["message_id"]  # once
            assert text in last  # whole
        assert "additionalContext.txt" not in last and "tool-results" not in last  # never a file preview
