"""Permission requests relayed: Claude Code's PermissionRequest hook asks the ensemble, the first answer decides.

One real interactive Claude Code in tmux (no --dangerously-skip-permissions), its model scripted to ask
for Bash; a real `tempo serve` conductor answers; what the model read is in the recorded requests.
"""

import asyncio
import json
import subprocess
import sys

import pytest

from claude_code import Interactive, ScriptedModel, calls, claude_home, last_user_text, poll, tool_use, write_hooks
from conftest import ROOT, ToolFailed, play, tempo_env, wait_until
from tempo_workflows import workflow_id
from test_conductor import plain_client

pytestmark = pytest.mark.anyio

PERMISSION_HOOK = """
import json, sys
event = json.load(sys.stdin)
open(sys.argv[1], "a").write(json.dumps(event) + "\\n")
answer = json.load(open(sys.argv[2])).get(event.get("tool_input", {}).get("command"))
if answer:  # else print nothing
    print(json.dumps({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": answer}}))
"""


def test_claude_codes_permission_hooks_have_these_shapes(tmp_path):
    """Pinned for 2.1.197: what PermissionRequest and Notification get, and what answers them."""
    project, log, answer = tmp_path / "project", tmp_path / "hooks.jsonl", tmp_path / "answer.json"
    project.mkdir()
    script = tmp_path / "hook.py"
    script.write_text(PERMISSION_HOOK)
    command = f"{sys.executable} {script} {log} {answer}"
    write_hooks(project, {"PermissionRequest": [{"hooks": [{"type": "command", "command": command}]}],
                          "Notification": [{"hooks": [{"type": "command", "command": command}]}]})
    steps = ["touch ALLOWED", "touch DENIED", "touch ASKED"]

    def reply(body):
        done = calls(body, "Bash")
        return [tool_use("Bash", {"command": steps[done], "description": "make a file"})] if done < len(steps) else ["done"]

    answer.write_text(json.dumps({"touch ALLOWED": {"behavior": "allow"},  # touch ASKED: nothing printed, the dialog shows
                                  "touch DENIED": {"behavior": "deny", "message": "not this one: PINNED-REASON"}}))
    with ScriptedModel(reply) as model:
        env = claude_home(tmp_path / "home", project, model)
        with Interactive(cwd=project, env=env) as session:
            session.wait_ready()
            session.type("go")
            denied = model.wait_for(lambda b: "PINNED-REASON" in last_user_text(b), timeout=30)
            screen = session.wait_screen(lambda s: "Do you want to proceed?" in s and "touch ASKED" in s, timeout=30)
            assert "touch ASKED" in screen, screen.replace("\n\n", "\n")
            assert (project / "ALLOWED").exists() and not (project / "DENIED").exists() and not (project / "ASKED").exists()
            poll(lambda: "permission_prompt" in log.read_text(), 20, "the Notification hook")
    assert "PINNED-REASON" in last_user_text(denied)  # a deny's message is the tool's error the model reads
    events = [json.loads(line) for line in log.read_text().splitlines()]
    asks = [e for e in events if e["hook_event_name"] == "PermissionRequest"]
    assert [a["tool_input"]["command"] for a in asks] == steps
    assert {"session_id", "transcript_path", "cwd", "permission_mode", "tool_name", "tool_input",
            "permission_suggestions"} <= set(asks[0]) and asks[0]["tool_name"] == "Bash"
    assert "tool_use_id" not in asks[0]  # nothing identifies the call: tempo's hook makes the request's id
    notes = [e for e in events if e["hook_event_name"] == "Notification"]
    # Said once the hook has said nothing (its dialog shows while the hook runs, and an answer dismisses it).
    assert [(n["notification_type"], n["message"]) for n in notes] == [("permission_prompt", "Claude needs your permission")]


async def next_permission(conductor) -> dict:
    """The next permission cue pushed to the conductor (join notices pass by)."""
    while True:
        cue = await conductor.next_cue(timeout=30)
        if cue["meta"]["kind"] == "permission":
            return cue


async def test_permission_requests_reach_the_conductor_and_its_answer_reaches_claude_code(tmp_path, temporal, ensemble, cli):
    project = tmp_path / "project"
    project.mkdir()
    steps = ["mkdir RULED", "touch MARKER", "touch DENIED", "touch LATE"]

    def reply(body):
        done = calls(body, "Bash")
        return [tool_use("Bash", {"command": steps[done], "description": "work"})] if done < len(steps) else ["done"]

    with ScriptedModel(reply) as model:
        env = {**claude_home(tmp_path / "home", project, model), "MCP_CONNECT_TIMEOUT_MS": "90000", "MCP_TIMEOUT": "90000"}  # a busy machine
        server = tempo_env(temporal, ensemble, home=tmp_path / "home", CLAUDE_TEMPO_PLAYER_NAME="carol",
                           CLAUDE_TEMPO_PERMIT_ALLOW="Bash(mkdir:*)", CLAUDE_TEMPO_PERMIT_TIMEOUT="20")
        from claude_code import write_tempo_mcp_json

        write_tempo_mcp_json(project, {k: v for k, v in server.items() if k != "PATH"})
        init = subprocess.run([sys.executable, str(ROOT / "tempo.py"), "init", "-d", str(project)], env=env,
                              capture_output=True, text=True, timeout=60)
        assert init.returncode == 0, init.stderr
        hooks = json.loads((project / ".claude" / "settings.local.json").read_text())["hooks"]
        assert hooks["PermissionRequest"][0]["hooks"][0]["timeout"] >= 3600  # tempo's wait ends first, never Claude Code's
        status_env = {**cli.env, "TEMPORAL_ADDRESS": temporal.address, "CLAUDE_TEMPO_ENSEMBLE": ensemble}

        async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor:
            with Interactive(cwd=project, env=env) as session:
                await asyncio.to_thread(session.wait_ready)

                async def joined() -> bool:
                    return any(p["name"] == "carol" for p in (await conductor.call("ensemble"))["players"])

                await wait_until(joined, timeout=90)  # its serve is there: the hook has someone to ask
                await asyncio.to_thread(session.type, "go")

                # A standing rule answers at once: nobody is asked, the history says so.
                try:
                    await wait_until(lambda: (project / "RULED").is_dir(), timeout=40)
                except AssertionError:
                    raise AssertionError(f"no RULED; the screen shows:\n{session.screen()}") from None
                asked = await next_permission(conductor)  # the next step (touch MARKER) asks the conductor
                assert (project / "RULED").is_dir()
                meta = asked["meta"]
                assert (meta["kind"], meta["from"], meta["source"]) == ("permission", "carol", "Bash"), asked
                request_id = meta["message_id"]
                assert request_id in asked["content"] and "touch MARKER" in asked["content"]

                status = await asyncio.to_thread(subprocess.run, [sys.executable, str(ROOT / "tempo.py"), "status", ensemble],
                                                 env=status_env, capture_output=True, text=True, timeout=60)
                assert "waiting: permission Bash(touch MARKER) since" in status.stdout, status.stdout + status.stderr
                listed = await conductor.call("permits")
                assert [(r["request_id"], r["player"], r["preview"]) for r in listed["waiting"]] == [(request_id, "carol", "touch MARKER")]

                answered = await conductor.call("permit", request_id=request_id, decision="allow")
                assert (answered["decision"], answered["by"]) == ("allow", "conductor")
                await wait_until(lambda: (project / "MARKER").exists(), timeout=20)  # no key pressed in its window

                # Deny from the CLI, with a reason the model reads; a second answer is refused politely.
                asked = await next_permission(conductor)
                denied_id = asked["meta"]["message_id"]
                assert "touch DENIED" in asked["content"]
                run = await asyncio.to_thread(
                    subprocess.run, [sys.executable, str(ROOT / "tempo.py"), "permit", denied_id, "deny", "--reason", "REASON-42: not in prod"],
                    env=status_env, capture_output=True, text=True, timeout=60)
                assert run.returncode == 0, run.stderr
                body = await asyncio.to_thread(model.wait_for, lambda b: calls(b, "Bash") == 3, 30)
                assert "REASON-42: not in prod" in last_user_text(body) and "cli denied" in last_user_text(body)
                assert not (project / "DENIED").exists()
                with pytest.raises(ToolFailed, match="already answered .*deny by cli"):
                    await conductor.call("permit", request_id=denied_id, decision="allow")

                # Nobody answers: after permit_timeout Claude Code's own dialog shows, and a late answer changes nothing.
                asked = await next_permission(conductor)
                late_id = asked["meta"]["message_id"]
                await asyncio.to_thread(session.wait_screen, lambda s: "Do you want to proceed?" in s and "touch LATE" in s, 30)

                async def unanswered() -> bool:
                    return late_id not in [r["request_id"] for r in (await conductor.call("permits"))["waiting"]]

                await wait_until(unanswered, timeout=30)  # permit_timeout (20 s) has passed
                screen = await asyncio.to_thread(session.wait_screen, "Do you want to proceed?", 5)
                assert "touch LATE" in screen  # Claude Code's own dialog stays, for the person at its screen
                with pytest.raises(ToolFailed, match="already answered .*dialog"):
                    await conductor.call("permit", request_id=late_id, decision="allow")
                assert not (project / "LATE").exists()

            client = await plain_client(temporal)
            history = await client.get_workflow_handle(workflow_id(ensemble, "conductor")).query("history")
            lines = [(h["kind"], h["request_id"], h["sender"], h["text"].split(" for ")[0]) for h in history
                     if h["kind"] in ("permission", "permit")]
            rule = [line for line in lines if line[2] == "rule Bash(mkdir:*)"]
            assert rule and rule[0][0] == "permit" and rule[0][3] == "allow Bash(mkdir RULED)"
            assert ("permission", request_id, "carol") == lines[1][:3] and ("permit", request_id, "conductor") == lines[2][:3]
            assert ("permit", denied_id, "cli", "deny Bash(touch DENIED)") == lines[4]
            assert [line[:3] for line in lines[5:7]] == [("permission", late_id, "carol"), ("permit", late_id, "nobody in time")]


async def test_the_dashboard_shows_a_request_and_its_allow_button_answers_it(temporal, ensemble, tmp_path):
    """`tempo hook` run as Claude Code runs it (PermissionRequest on stdin) waits; the card's Allow answers it."""
    import uuid

    from conftest import chromium, dashboard

    session_id = str(uuid.uuid4())
    async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="web", CLAUDE_CODE_SESSION_ID=session_id) as web, \
            dashboard(temporal, ensemble, tmp_path) as board, chromium(tmp_path / "profile") as browser:
        await conductor.name()
        await web.name()
        hook = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "tempo.py"), "hook", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**web.process_env, "CLAUDE_CODE_SESSION_ID": ""})
        ask = {"session_id": session_id, "hook_event_name": "PermissionRequest", "tool_name": "Bash", "cwd": str(tmp_path),
               "tool_input": {"command": "rm -rf build", "description": "clean"}, "permission_mode": "default"}
        hook.stdin.write(json.dumps(ask).encode())
        hook.stdin.close()
        tab = await browser.open(board.url)
        waits = "document.querySelector('[data-name=web] .waits')?.textContent || ''"
        assert "waiting: permission Bash(rm -rf build)" in await tab.wait_for(f"({waits}).includes('rm -rf build') && {waits}")
        await tab.eval("document.querySelector('[data-name=web] .permit button[data-decision=allow]').click()")
        out, _ = await asyncio.wait_for(hook.communicate(), 30)
        assert json.loads(out) == {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}}
        await tab.wait_for("!document.querySelector('[data-name=web] .waits')")  # no longer waiting
        client = await plain_client(temporal)
        history = await client.get_workflow_handle(workflow_id(ensemble, "conductor")).query("history")
        assert [(h["sender"], h["text"]) for h in history if h["kind"] == "permit"] == [("dashboard", "allow Bash(rm -rf build) for web")]


async def next_blocker(conductor, timeout: float = 30) -> dict:
    """The next blocker report pushed to the conductor (join notices pass by)."""
    while True:
        cue = await conductor.next_cue(timeout=timeout)
        if (cue["meta"]["kind"], cue["meta"].get("source")) == ("report", "blocker"):
            return cue


async def test_a_stalled_player_is_told_to_the_conductor_once(temporal, ensemble, tmp_path):
    """Cues left unread while it works, then waiting for input at its screen: one blocker each, never a reminder."""
    import uuid

    from test_hooks import hook

    sid = str(uuid.uuid4())
    async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="bob", CLAUDE_CODE_SESSION_ID=sid,
                 CLAUDE_TEMPO_STALL_TIMEOUT="2") as bob:
        await conductor.name()
        await bob.name()
        await conductor.call("cue", to="bob", message="please review PR 12")  # its hooks would show it; none runs
        told = await next_blocker(conductor)
        assert told["meta"]["from"] == "bob"
        assert "bob has left 1 cue unread" in told["content"] and "from conductor" in told["content"], told

        # The real Notification hook: Claude Code waits for input at a screen nobody watches.
        said = await asyncio.to_thread(hook, "Notification", sid, notification_type="idle_prompt", message="Claude is waiting for your input")
        assert said.returncode == 0, said.stderr
        told = await next_blocker(conductor)
        assert "bob has waited" in told["content"] and "for input at its screen" in told["content"], told
        await asyncio.to_thread(hook, "Notification", sid, notification_type="idle_prompt", message="Claude is waiting for your input")

        with pytest.raises(asyncio.TimeoutError):  # the same stalls again, and longer: nothing more is said
            await next_blocker(conductor, timeout=6)
        client = await plain_client(temporal)
        history = await client.get_workflow_handle(workflow_id(ensemble, "conductor")).query("history")
        assert [h["sender"] for h in history if h["kind"] == "report" and h["source"] == "blocker"] == ["bob", "bob"]


async def test_a_request_waiting_while_the_serve_restarts_is_answered_once(temporal, ensemble, tmp_path):
    """The real `tempo hook` waits; its player's serve restarts (Claude Code's /mcp Reconnect); the answer lands once."""
    import uuid

    sid, home = str(uuid.uuid4()), tmp_path / "home"
    web_env = dict(CLAUDE_TEMPO_PLAYER_NAME="web", CLAUDE_CODE_SESSION_ID=sid, CLAUDE_TEMPO_HOME=str(home))
    async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor:
        await conductor.name()
        async with play(temporal, ensemble, **web_env) as web:
            await web.name()
            hook = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "tempo.py"), "hook", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                env={**web.process_env, "CLAUDE_CODE_SESSION_ID": ""})
            ask = {"session_id": sid, "hook_event_name": "PermissionRequest", "tool_name": "Bash", "cwd": str(tmp_path),
                   "tool_input": {"command": "touch RESTARTED"}, "permission_mode": "default"}
            hook.stdin.write(json.dumps(ask).encode())
            hook.stdin.close()
            request_id = (await next_permission(conductor))["meta"]["message_id"]
        async with play(temporal, ensemble, **web_env) as web:  # its successor, for the same Claude Code session
            assert await web.name() == "web"

            async def waits() -> bool:
                return [r["request_id"] for r in (await conductor.call("permits"))["waiting"]] == [request_id]

            await wait_until(waits, timeout=30)  # the hook asked the new serve: the request still waits, as itself
            answered = await conductor.call("permit", request_id=request_id, decision="allow")
            assert answered["by"] == "conductor"
            out, _ = await asyncio.wait_for(hook.communicate(), 30)
            assert json.loads(out) == {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}}
            with pytest.raises(ToolFailed, match="already answered"):
                await conductor.call("permit", request_id=request_id, decision="deny")
        client = await plain_client(temporal)
        history = await client.get_workflow_handle(workflow_id(ensemble, "conductor")).query("history")
        lines = [(h["kind"], h["sender"]) for h in history if h["request_id"] == request_id]
        assert lines == [("permission", "web"), ("permit", "conductor")], lines  # asked once, answered once
