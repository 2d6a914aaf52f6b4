"""The delivery ladder's hook paths, driven as Claude Code drives them: `tempo hook` with its JSON.

A `tempo serve` that runs under Claude Code knows its session id (CLAUDE_CODE_SESSION_ID); the
hooks pass theirs on stdin. Here a real MCP client plays Claude Code's part, and each hook is the
real `tempo hook` process, so what a hook prints is what Claude Code would show the model.
"""

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest

from conftest import ROOT, play, wait_until

pytestmark = pytest.mark.anyio


def hook(event: str, session_id: str, *args: str, transcript: str = "", **fields) -> subprocess.CompletedProcess:
    """Run `tempo hook` as Claude Code runs it for `event`."""
    data = {"session_id": session_id, "hook_event_name": event, "transcript_path": transcript, "cwd": str(ROOT), **fields}
    return subprocess.run([sys.executable, str(ROOT / "tempo.py"), "hook", *args], input=json.dumps(data),
                          capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"]})


def start_waiter(session_id: str, transcript: str = "") -> subprocess.Popen:
    data = {"session_id": session_id, "hook_event_name": "Stop", "transcript_path": transcript}
    p = subprocess.Popen([sys.executable, str(ROOT / "tempo.py"), "hook", "wait"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={"PATH": os.environ["PATH"]})
    p.stdin.write(json.dumps(data))
    p.stdin.close()
    return p


class Transcript:
    """A session transcript as Claude Code writes it (JSON lines chained by parentUuid): what a hook showed
    the model, then the model's answer. tempo's receipts say `seen` only for what an answer follows."""

    def __init__(self, path) -> None:
        self.path, self.last = path, None
        path.touch()

    def __str__(self) -> str:
        return str(self.path)

    def entry(self, **fields) -> None:
        uid = str(uuid.uuid4())
        with open(self.path, "a") as f:
            f.write(json.dumps({"uuid": uid, "parentUuid": self.last, **fields}) + "\n")
        self.last = uid

    def context(self, text: str) -> "Transcript":
        self.entry(type="attachment", attachment={"type": "hook_additional_context", "content": [text]})
        return self

    def user(self, text: str) -> "Transcript":
        self.entry(type="user", message={"role": "user", "content": text})
        return self

    def answer(self) -> None:
        self.entry(type="assistant", message={"role": "assistant", "content": [{"type": "text", "text": "ok"}]})


def context_of(result: subprocess.CompletedProcess, event: str) -> str:
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["hookSpecificOutput"]["hookEventName"] == event
    return out["hookSpecificOutput"]["additionalContext"]


async def claude_like(temporal, ensemble, name: str):
    """A `tempo serve` as Claude Code starts it (its session id in the environment)."""
    sid = str(uuid.uuid4())
    return sid, play(temporal, ensemble, CLAUDE_CODE_SESSION_ID=sid, CLAUDE_TEMPO_PLAYER_NAME=name)


async def test_a_working_model_gets_each_cue_once_through_its_hooks(temporal, ensemble, tmp_path):
    sid, bob_session = await claude_like(temporal, ensemble, "bob")
    transcript = Transcript(tmp_path / "t.jsonl")
    async with play(temporal, ensemble) as a, bob_session as bob:
        await a.call("set_name", name="alice")
        await bob.call("ensemble")  # joined
        sent = await a.call("cue", to="bob", message="please review PR 12")
        assert sent["seen"] is None  # nobody has shown it to bob's model yet
        # count and size, as the listing reads them from Temporal's visibility: a moment behind the cue
        await wait_until(lambda: _unread(a, "bob", 1, chars=len("please review PR 12")))
        text = await wait_until(lambda: (r := hook("PostToolUse", sid, transcript=str(transcript))).stdout
                                and context_of(r, "PostToolUse"))
        assert "please review PR 12" in text and "alice" in text and sent["message_id"] in text
        assert hook("PostToolUse", sid).stdout == ""  # shown once
        assert (await a.call("receipts"))["receipts"][0]["state"] == "unread"  # printed, not yet in a request answered
        transcript.context(text)
        await asyncio.sleep(0.5)
        assert (await a.call("receipts"))["receipts"][0]["state"] == "unread"  # recorded for the next request ...
        transcript.answer()  # ... which the model answered
        await wait_until(lambda: _seen(a, sent["message_id"]))
        assert hook("Stop", sid).stdout == ""
        assert (await bob.call("listen"))["messages"] == []  # not again through listen
        receipts = (await a.call("receipts"))["receipts"]
        assert [(r["message_id"], r["state"], r["path"]) for r in receipts] == [(sent["message_id"], "seen", "hook")]
        await wait_until(lambda: _unread(a, "bob", 0))


async def _unread(player, name: str, count: int, chars: int | None = None) -> bool:
    listing = await player.call("ensemble")
    row = next(p for p in listing["players"] if p["name"] == name)
    return row["unread"] == count and chars in (None, row["unread_chars"])


async def test_stop_hook_hands_over_unread_cues_before_the_model_idles(temporal, ensemble):
    sid, bob_session = await claude_like(temporal, ensemble, "bob")
    async with play(temporal, ensemble) as a, bob_session as bob:
        await bob.call("ensemble")
        await a.call("cue", to="bob", message="one")
        await a.call("cue", to="bob", message="two")
        result = await wait_until(lambda: (r := hook("Stop", sid, stop_hook_active=False)).stdout and r)
        answer = json.loads(result.stdout)
        assert answer["decision"] == "block"
        assert answer["reason"].index("one") < answer["reason"].index("two")
        assert hook("Stop", sid).stdout == ""  # now it may idle


async def test_the_waiter_wakes_an_idle_session_and_ends_with_it(temporal, ensemble, tmp_path):
    sid, bob_session = await claude_like(temporal, ensemble, "bob")
    transcript = Transcript(tmp_path / "t.jsonl")
    async with play(temporal, ensemble) as a, bob_session as bob:
        await bob.call("ensemble")
        assert hook("SessionStart", sid).returncode == 0
        waiter = start_waiter(sid, str(transcript))
        await asyncio.sleep(0.5)
        assert waiter.poll() is None  # nothing to say: it waits
        sent = await a.call("cue", to="bob", message="are you there?")
        code = await asyncio.to_thread(waiter.wait, 15)
        assert code == 2
        woke = waiter.stderr.read()
        assert "are you there?" in woke
        assert waiter.stdout.read() == ""
        assert (await bob.call("listen"))["messages"] == []
        transcript.user(f"<task-notification>{woke}</task-notification>").answer()
        receipts = await wait_until(lambda: _seen(a, sent["message_id"]))
        assert receipts["path"] == "waiter"
        # a new waiter replaces an older one; both end quietly when the session ends
        first, second = start_waiter(sid), None
        await asyncio.sleep(0.3)
        second = start_waiter(sid)
        assert await asyncio.to_thread(first.wait, 10) == 0
        assert second.poll() is None
    assert await asyncio.to_thread(second.wait, 10) == 0
    assert second.stderr.read() == ""


async def test_a_wake_queued_behind_a_turn_is_not_shown_again_when_that_turn_ends(temporal, ensemble, tmp_path):
    """Seen in CI on a loaded machine: the waiter prints a cue while the model still works (its hooks lag), so
    Claude Code queues the wake for the next turn; the running turn ends without it. That is no loss: the cue
    must not be offered again (the model would read it twice), only a turn begun after the wake may miss it."""
    import tempo

    sid, bob_session = await claude_like(temporal, ensemble, "bob")
    transcript = Transcript(tmp_path / "t.jsonl")
    async with play(temporal, ensemble) as a, bob_session as bob:
        await bob.call("ensemble")
        assert hook("SessionStart", sid).returncode == 0
        waiter = start_waiter(sid, str(transcript))
        sent = await a.call("cue", to="bob", message="queued behind a turn")
        assert await asyncio.to_thread(waiter.wait, 15) == 2
        woke = waiter.stderr.read()
        assert hook("UserPromptSubmit", sid, transcript=str(transcript)).stdout == ""  # the turn it lands in had begun
        transcript.user("the user's prompt").answer()
        assert hook("Stop", sid, transcript=str(transcript)).stdout == ""  # that turn ends; the wake waits in the queue
        await asyncio.sleep(tempo.CONFIRM_GRACE + 0.5)
        assert hook("UserPromptSubmit", sid, transcript=str(transcript)).stdout == ""  # the wake's turn: not shown again
        again = start_waiter(sid, str(transcript))
        await asyncio.sleep(1)
        assert again.poll() is None  # nor by a waiter
        transcript.user(f"<task-notification>{woke}</task-notification>").answer()
        assert (await wait_until(lambda: _seen(a, sent["message_id"])))["path"] == "waiter"
        assert hook("Stop", sid, transcript=str(transcript)).stdout == ""
        await asyncio.sleep(tempo.CONFIRM_GRACE + 0.5)
        assert again.poll() is None  # seen once: nothing more to wake it for
    assert await asyncio.to_thread(again.wait, 10) == 0


async def _seen(player, message_id: str):
    rows = (await player.call("receipts", message_ids=[message_id]))["receipts"]
    return rows[0] if rows[0]["state"] == "seen" else None


async def test_session_start_tells_the_model_its_name_and_who_is_there(temporal, ensemble):
    sid, bob_session = await claude_like(temporal, ensemble, "bob")
    async with play(temporal, ensemble) as a, bob_session as bob:
        await a.call("set_name", name="alice")
        await a.call("set_part", part="the HTTP API")
        await bob.call("ensemble")
        text = context_of(hook("SessionStart", sid, source="startup"), "SessionStart")
        assert "'bob'" in text and ensemble in text and "alice: the HTTP API" in text


async def test_a_cue_seen_by_a_plain_client_says_so_when_the_sender_waits_for_it(temporal, ensemble):
    async with play(temporal, ensemble) as a, play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="bob") as bob:
        await bob.call("ensemble")
        sent = await a.call("cue", to="bob", message="hi", wait_seen=True)
        assert (await bob.next_cue())["content"] == "hi"
        assert sent["seen"]["path"] == "channel"  # the sender asked to wait: the push was seen meanwhile
        # By default `cue` answers once the cue is sent, and `receipts` tells later.
        later = await a.call("cue", to="bob", message="and again")
        assert later["seen"] is None
        await bob.next_cue()
        assert (await wait_until(lambda: _seen(a, later["message_id"])))["path"] == "channel"


def test_a_hook_without_a_session_prints_nothing_and_exits_0():
    result = hook("PostToolUse", str(uuid.uuid4()))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    bad = subprocess.run([sys.executable, str(ROOT / "tempo.py"), "hook"], input="not json", capture_output=True,
                         text=True, timeout=30, env={"PATH": os.environ["PATH"]})
    assert (bad.returncode, bad.stdout, bad.stderr) == (0, "", "")


async def test_the_conductors_history_records_when_each_cue_was_seen(temporal, ensemble, tmp_path):
    import tempo

    sid, bob_session = await claude_like(temporal, ensemble, "bob")
    transcript = Transcript(tmp_path / "t.jsonl")
    async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, bob_session as bob:
        await bob.call("ensemble")
        out = await conductor.call("cue", to="bob", message="take the API")
        await bob.call("report", type="result", message="API done")
        await conductor.next_cue()  # pushed to the conductor (a plain client): seen on the channel
        shown = await wait_until(lambda: hook("PostToolUse", sid, transcript=str(transcript)).stdout)
        transcript.context(json.loads(shown)["hookSpecificOutput"]["additionalContext"]).answer()  # bob's model got it
        client = await tempo.connect(tempo.Config(address=temporal.address))
        handle = client.get_workflow_handle(f"claude-session-{ensemble}-conductor")

        async def seen_lines():
            lines = {(h["direction"], h["text"]): h["seen"] for h in await handle.query("history") if h["text"] in ("take the API", "API done")}
            return lines if len(lines) == 2 and all(lines.values()) else None

        lines = await wait_until(seen_lines, timeout=15)
        assert lines[("out", "take the API")].startswith("hook at ")
        assert lines[("in", "API done")].startswith("channel at ")
        assert out["message_id"] in {h["id"] for h in await handle.query("history")}


async def test_a_cue_a_hook_is_showing_is_kept_from_other_paths_and_comes_back_if_the_hook_dies(temporal, ensemble):
    import socket

    import tempo

    sid, bob_session = await claude_like(temporal, ensemble, "bob")
    async with play(temporal, ensemble) as a, bob_session as bob:
        await bob.call("ensemble")
        await a.call("cue", to="bob", message="only once, please")
        endpoint = os.path.join(tempo.runtime_dir(), tempo._endpoint_keys(sid)[0] + ".sock")
        request = json.dumps({"op": "hook", "input": {"session_id": sid, "hook_event_name": "PostToolUse"}}).encode()

        def first_hook() -> tuple[socket.socket, str]:  # a hook that got its answer but has not printed it yet
            while True:
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(endpoint)
                sock.sendall(request + b"\n")
                answer = sock.makefile("rb").readline().decode()
                if "only once, please" in answer:
                    return sock, answer
                sock.close()

        sock, answer = await asyncio.wait_for(asyncio.to_thread(first_hook), 15)
        assert json.loads(answer)["ack"] is True
        assert hook("PostToolUse", sid).stdout == ""  # reserved for the hook that is showing it
        sock.close()  # ... which dies before it printed: the cue is free again
        again = await wait_until(lambda: (r := hook("PostToolUse", sid)).stdout and context_of(r, "PostToolUse"))
        assert "only once, please" in again
        assert hook("PostToolUse", sid).stdout == ""


async def test_hooks_of_another_session_get_nothing_but_clear_keeps_the_session(temporal, ensemble):
    """A hook whose session is not the serve's (a nested `claude -p`, found through its ancestors) gets no
    identity and no cue; the same session after /clear (SessionStart, source "clear") is still its own."""
    sid, bob_session = await claude_like(temporal, ensemble, "bob")
    async with play(temporal, ensemble) as a, bob_session as bob:
        await bob.call("ensemble")
        await a.call("cue", to="bob", message="for bob's model")
        stranger = str(uuid.uuid4())
        for event in ("SessionStart", "UserPromptSubmit", "PostToolUse", "Stop"):
            assert hook(event, stranger, source="startup").stdout == "", event  # found bob's serve by pid, got nothing
        cleared = str(uuid.uuid4())
        assert "'bob'" in context_of(hook("SessionStart", cleared, source="clear"), "SessionStart")
        assert "for bob's model" in context_of(hook("PostToolUse", cleared), "PostToolUse")


async def test_hook_answers_fit_claude_codes_limits(temporal, ensemble, tmp_path):
    """Under the context cap (the rest on the next hook; a longer cue whole at the Stop); no more consecutive
    Stop blocks than Claude Code answers; seen only what a request the model answered held; what a turn
    left unanswered wakes the idle session again."""
    import tempo

    sid, bob_session = await claude_like(temporal, ensemble, "bob")
    transcript = Transcript(tmp_path / "t.jsonl")
    async with play(temporal, ensemble) as a, bob_session as bob:
        await bob.call("ensemble")
        small = [(await a.call("cue", to="bob", message=f"part {i} " + "s" * 4000))["message_id"] for i in range(3)]
        long = (await a.call("cue", to="bob", message="L" * 15_000))["message_id"]
        await wait_until(lambda: _unread(a, "bob", 4))
        first = context_of(await wait_until(lambda: (r := hook("PostToolUse", sid, transcript=str(transcript))).stdout and r),
                           "PostToolUse")
        transcript.context(first).answer()  # the model got the first hook's context and answered
        second = context_of(hook("PostToolUse", sid), "PostToolUse")
        assert len(first) <= tempo.HOOK_CONTEXT_CAP and len(second) <= tempo.HOOK_CONTEXT_CAP
        assert [i for i in small if i in first] == small[:2] and [i for i in small if i in second] == small[2:]
        assert hook("PostToolUse", sid).stdout == ""  # the long one does not fit a hook's context ...
        block = json.loads(hook("Stop", sid, stop_hook_active=False).stdout)
        assert long in block["reason"] and "L" * 15_000 in block["reason"]  # ... it goes whole at the Stop
        transcript.user("Stop hook feedback:\n" + block["reason"]).answer()
        transcript.context(second)  # recorded late, for a next request that never comes
        more = []
        for i in range(tempo.STOP_BLOCKS - 1):  # more blocks, as many as Claude Code answers ...
            more.append((await a.call("cue", to="bob", message=f"more {i}"))["message_id"])
            assert json.loads((await wait_until(lambda: (r := hook("Stop", sid, stop_hook_active=True)).stdout and r)).stdout)
        late = await a.call("cue", to="bob", message="one block too many")
        await asyncio.sleep(1)  # it has reached bob's serve (a cue is pushed within ~50 ms)
        assert hook("Stop", sid, stop_hook_active=True).stdout == ""  # ... and not one more: the turn ends
        await wait_until(lambda: _seen(a, long))
        await asyncio.sleep(tempo.CONFIRM_GRACE + 0.5)
        rows = {r["message_id"]: r["state"] for r in (await a.call("receipts"))["receipts"]}
        assert {i for i, state in rows.items() if state == "seen"} == {*small[:2], long}  # what a request answered held
        waiter = start_waiter(sid, str(transcript))  # idle: the waiter wakes it with what the turn left out
        assert await asyncio.to_thread(waiter.wait, 15) == 2
        woke = waiter.stderr.read()
        assert small[2] in woke and all(i in woke for i in more) and late["message_id"] in woke


async def test_two_serves_under_one_parent_keep_their_own_endpoints(temporal, ensemble):
    """Two sessions' serves with one parent process (here: this test, as in a reconnect the old and the new
    server under one claude): the first to end removes nothing of the second's; its hooks still reach it, by
    session id and (after /clear) through the parent's link, which the newer serve holds."""
    sid_a, a_session = await claude_like(temporal, ensemble, "ann")
    sid_b, b_session = await claude_like(temporal, ensemble, "ben")
    ann_up, ann_done = asyncio.Event(), asyncio.Event()

    async def ann_runs() -> None:  # in a task of its own, so it can end before ben
        async with a_session as ann:
            await ann.call("ensemble")
            ann_up.set()
            await ann_done.wait()

    async with play(temporal, ensemble) as sender:
        ann_task = asyncio.create_task(ann_runs())
        await asyncio.wait_for(ann_up.wait(), 60)
        async with b_session as ben:
            await ben.call("ensemble")
            assert "'ann'" in context_of(hook("SessionStart", sid_a, source="startup"), "SessionStart")
            assert "'ben'" in context_of(hook("SessionStart", sid_b, source="startup"), "SessionStart")
            ann_done.set()
            await ann_task  # ann's serve has ended and closed its endpoint
            await sender.call("cue", to="ben", message="still there, ben?")
            cleared = str(uuid.uuid4())  # ben's session after /clear: found through the parent's link
            assert "'ben'" in context_of(hook("SessionStart", cleared, source="clear"), "SessionStart")
            assert "still there, ben?" in context_of(
                await wait_until(lambda: (r := hook("PostToolUse", sid_b)).stdout and r), "PostToolUse")


async def test_a_cue_a_hook_showed_is_no_sign_of_a_channel(temporal, ensemble, tmp_path):
    """Seen in a whole run with the real Claude Code: a session whose channel is not known yet pushes its first cue
    on the channel too; the Stop hook shows it, and the transcript then holds its id. That is the hook's showing:
    taken for the channel's, it set channels on, and the session's next cue waited for a channel that never came."""
    import tempo

    sid = str(uuid.uuid4())
    flagged = ("sh", ["-c", f'"{sys.executable}" "{ROOT / "tempo.py"}" serve; exit $?', "claude",  # argv as Claude Code's
                      "--dangerously-load-development-channels", f"server:{tempo.SERVER_NAME}"])
    transcript = Transcript(tmp_path / "t.jsonl")
    async with play(temporal, ensemble) as a, play(temporal, ensemble, command=flagged, CLAUDE_CODE_SESSION_ID=sid,
                                                   CLAUDE_TEMPO_PLAYER_NAME="bob") as bob:
        await bob.call("ensemble")
        assert hook("SessionStart", sid, transcript=str(transcript)).returncode == 0
        first = await a.call("cue", to="bob", message="first, on both paths")
        assert await bob.next_cue()  # pushed on the channel: its fate is unknown
        shown = await wait_until(lambda: (r := hook("Stop", sid, transcript=str(transcript))).stdout and r, timeout=15)
        transcript.user("Stop hook feedback:\n" + json.loads(shown.stdout)["reason"])  # the model's turn goes on:
        assert hook("PostToolUse", sid, transcript=str(transcript)).returncode == 0  # a hook reads the transcript
        transcript.answer()
        assert (await wait_until(lambda: _seen(a, first["message_id"]), timeout=15))["path"] == "stop"
        assert hook("Stop", sid, transcript=str(transcript), stop_hook_active=True).stdout == ""  # it idles
        waiter = start_waiter(sid, str(transcript))
        second = await a.call("cue", to="bob", message="second, while idle")
        assert await asyncio.to_thread(waiter.wait, 15) == 2  # channels are not taken for on: the waiter wakes it
        assert "second, while idle" in waiter.stderr.read()
        listed = {p["name"]: p for p in (await a.call("ensemble"))["players"]}
        assert "channel:on" not in listed["bob"]["delivery"], listed["bob"]
        assert second["message_id"]
