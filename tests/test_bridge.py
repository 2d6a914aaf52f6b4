"""The Copilot bridge, end to end with the real Copilot CLI and a model of our own.

`tempo bridge` runs as a process, exactly as a user starts it, driving the Copilot CLI from npm
(node_modules/@github/copilot-linux-x64/copilot, never one on PATH) through the Copilot SDK, in
bring-your-own-key mode against a scripted OpenAI-compatible endpoint on loopback
(tests/scripted_model.py) that records every request. The other players are real `tempo serve`
sessions (conftest `play()`), on a real Temporal dev server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import tempo
from conftest import ROOT, ToolFailed, play, tempo_env, wait_until
from scripted_model import Reply, Request, ScriptedModel
from test_recruit import cue_matching, tmux_dir  # noqa: F401 (a fixture)

COPILOT_CLI = ROOT / "node_modules" / "@github" / "copilot-linux-x64" / "copilot"


class Bridge:
    """One `tempo bridge` process; its terminal output collected line by line."""

    def __init__(self, argv: list[str], env: dict, cwd: Path, tty: bool = False) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        if tty:  # a terminal, as a person starts it: Ctrl+D is end of input there
            self.master, slave = pty.openpty()
            self.process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                                            start_new_session=True)
            os.close(slave)
            streams = [self.master]
        else:
            self.master = None
            self.process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, start_new_session=True)
            streams = [self.process.stdout.fileno(), self.process.stderr.fileno()]
        for fd in streams:
            threading.Thread(target=self.collect, args=(fd,), daemon=True).start()

    def collect(self, fd: int) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            *done, buffer = buffer.split(b"\n")
            with self.changed:
                self.lines.extend(line.decode("utf-8", "replace").rstrip("\r") for line in done)
                self.changed.notify_all()
        with self.changed:
            if buffer:
                self.lines.append(buffer.decode("utf-8", "replace"))
            self.changed.notify_all()

    @property
    def output(self) -> str:
        with self.changed:
            return "\n".join(self.lines)

    async def wait_for_line(self, pattern: str, timeout: float = 60) -> str:
        def found() -> str | None:
            return next((line for line in list(self.lines) if re.search(pattern, line)), None)

        try:
            return await wait_until(found, timeout=timeout, interval=0.05)
        except AssertionError:
            raise AssertionError(f"no line matching {pattern!r} within {timeout}s; the bridge said:\n{self.output}") from None

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def exit_code(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Leave as a user does (SIGTERM), so the name is free again at once; kill what is left."""
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            self.process.terminate()
            self.process.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)


def bridge_env(temporal, ensemble: str, home: Path, model: ScriptedModel, **extra: str) -> dict:
    """A bridge's environment: this test's Temporal and ensemble, the npm Copilot CLI, the scripted model."""
    return tempo_env(
        temporal, ensemble, home=home,
        COPILOT_CLI_PATH=str(COPILOT_CLI), COPILOT_OFFLINE="true",
        COPILOT_PROVIDER_BASE_URL=model.base_url, COPILOT_MODEL="scripted-model",
        CLAUDE_TEMPO_TERMINAL="manual", **extra,
    )


@contextlib.asynccontextmanager
async def running_bridge(temporal, ensemble: str, tmp_path: Path, model: ScriptedModel, *args: str,
                         tty: bool = False, name: str = "copilot-1", **env: str):
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    bridge = Bridge([sys.executable, str(ROOT / "tempo.py"), "bridge", *args],
                    bridge_env(temporal, ensemble, home, model, CLAUDE_TEMPO_PLAYER_NAME=name, **env), work, tty=tty)
    try:
        await bridge.wait_for_line(rf"joined ensemble {ensemble} as {name}")
        yield bridge
    finally:
        bridge.stop()


def cue_text(request: Request) -> str:
    """The cue the bridge put in the last user message, if that is what the model is answering."""
    last = request.messages()[-1] if request.messages() else {}
    return request.last_user_text() if last.get("role") == "user" else ""


needs_cli = pytest.mark.skipif(not COPILOT_CLI.is_file(), reason="npm ci installs the Copilot CLI into node_modules")


@needs_cli
@pytest.mark.anyio
async def test_a_cue_reaches_the_model_its_answer_comes_back_and_sigterm_leaves(temporal, ensemble, tmp_path):
    def script(request: Request) -> Reply:
        if "[tempo cue from alice" in cue_text(request):
            return Reply(tool_calls=[("claude-tempo-cue", {"to": "alice", "message": "looks fine to me"})])
        return Reply(text="done")

    key = "sk-test-provider-key-0123"
    with ScriptedModel(script) as model:
        async with play(temporal, ensemble) as alice, \
                running_bridge(temporal, ensemble, tmp_path, model, COPILOT_PROVIDER_API_KEY=key) as bridge:
            await alice.call("set_name", name="alice")
            sent = await alice.call("cue", to="copilot-1", message="please review `x` for $bugs")
            request = await asyncio.to_thread(model.wait_for, lambda r: sent["message_id"] in cue_text(r))
            assert "please review `x` for $bugs" in request.last_user_text()
            assert "claude-tempo-cue" in request.tool_names()  # tempo's tools, as Copilot names MCP tools
            assert request.body["model"] == "scripted-model"
            assert request.headers.get("authorization") == f"Bearer {key}"  # the key reaches the provider ...
            for pid in [bridge.process.pid, *children(bridge.process.pid)]:  # ... and no command line
                assert key not in Path(f"/proc/{pid}/cmdline").read_text()

            answer = await alice.next_cue(timeout=30)
            assert answer["content"] == "looks fine to me" and answer["meta"]["from"] == "copilot-1"
            # The tool result went back to the model, and the bridge showed the model's last words.
            await asyncio.to_thread(model.wait_for, lambda r: any("message_id" in t for t in r.tool_results()))
            await bridge.wait_for_line(r"^copilot: done$")
            await leaves_cleanly(bridge, temporal, ensemble, "SIGTERM")
            assert key not in bridge.output


@needs_cli
@pytest.mark.anyio
async def test_a_tool_outside_the_policy_asks_the_ensemble_and_ctrl_d_leaves(temporal, ensemble, tmp_path):
    """Copilot's permission questions go through tempo's relay: the conductor allows, the CLI denies with a
    reason the model reads, a standing rule answers unasked, and nobody answering in time is a denial as before."""
    def script(request: Request) -> Reply:
        text = cue_text(request)
        for ask, command in (("make a file", "touch made-by-copilot.txt"), ("make another", "touch denied.txt"),
                             ("make a third", "touch unanswered.txt"), ("make ruled", "mkdir ruled")):
            if ask in text:
                return Reply(tool_calls=[("bash", {"command": command, "description": "make it"})])
        if "list files" in text:  # read-only: allowed without asking
            return Reply(tool_calls=[("bash", {"command": "ls", "description": "look"})])
        return Reply(text="understood")

    async def asked(conductor) -> dict:
        while True:
            cue = await conductor.next_cue(timeout=30)
            if cue["meta"]["kind"] == "permission":
                return cue

    work = tmp_path / "work"
    with ScriptedModel(script) as model:
        async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
                running_bridge(temporal, ensemble, tmp_path, model, tty=True, CLAUDE_TEMPO_PERMIT_TIMEOUT="5",
                               CLAUDE_TEMPO_PERMIT_ALLOW="Bash(mkdir:*)") as bridge:
            joined = await conductor.next_cue()
            assert joined["meta"]["kind"] == "joined"
            await conductor.call("cue", to="copilot-1", message="please make a file")
            question = await asked(conductor)
            assert (question["meta"]["from"], question["meta"]["source"]) == ("copilot-1", "Bash")
            assert "touch made-by-copilot.txt" in question["content"]
            answered = await conductor.call("permit", request_id=question["meta"]["message_id"], decision="allow")
            assert answered["by"] == "conductor"
            await wait_until(lambda: (work / "made-by-copilot.txt").exists(), timeout=30)

            await conductor.call("cue", to="copilot-1", message="please make another")
            question = await asked(conductor)
            denied = await asyncio.to_thread(subprocess.run, [sys.executable, str(ROOT / "tempo.py"), "permit",
                                             question["meta"]["message_id"], "deny", "--reason", "REASON-9: not here"],
                                             env=tempo_env(temporal, ensemble, home=tmp_path / "cli"), capture_output=True, text=True, timeout=60)
            assert denied.returncode == 0, denied.stderr
            read = await asyncio.to_thread(model.wait_for, lambda r: any("REASON-9" in t for t in r.tool_results()))
            assert "cli denied the shell command `touch denied.txt`: REASON-9: not here" in read.tool_results()[-1]
            assert not (work / "denied.txt").exists()

            await conductor.call("cue", to="copilot-1", message="please make ruled")  # a standing rule: nobody asked
            await wait_until(lambda: (work / "ruled").is_dir(), timeout=30)

            await conductor.call("cue", to="copilot-1", message="please make a third")  # nobody answers in time
            question = await asked(conductor)
            told = await cue_matching(conductor, "copilot-1 (Copilot) was denied")
            assert told["meta"]["kind"] == "report" and told["meta"]["source"] == "question"
            assert "touch unanswered.txt" in told["content"] and "--allow-tool 'shell(touch:*)'" in told["content"]
            # The model reads the denial as the tool's result, and nothing was written.
            denied = await asyncio.to_thread(model.wait_for, lambda r: any("bridge policy" in t for t in r.tool_results()))
            assert "does not allow the shell command `touch unanswered.txt`" in denied.tool_results()[-1]
            assert not (work / "unanswered.txt").exists()
            assert "denied the shell command `touch unanswered.txt`" in bridge.output
            with pytest.raises(ToolFailed, match="already answered .*deny by nobody in time"):
                await conductor.call("permit", request_id=question["meta"]["message_id"], decision="allow")

            await conductor.call("cue", to="copilot-1", message="please list files")
            listed = await asyncio.to_thread(model.wait_for, lambda r: any("exit code 0" in t for t in r.tool_results()))
            assert "rejected" not in listed.tool_results()[-1]
            await leaves_cleanly(bridge, temporal, ensemble, "Ctrl+D")


@needs_cli
@pytest.mark.anyio
async def test_a_busy_copilot_reads_a_cue_at_its_next_model_call(temporal, ensemble, tmp_path):
    def script(request: Request) -> Reply:
        if "start the long job" in cue_text(request):
            return Reply(tool_calls=[("bash", {"command": "sleep 60", "description": "the long job"})])
        return Reply(text="noted")

    with ScriptedModel(script) as model:
        async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
                running_bridge(temporal, ensemble, tmp_path, model, "--allow-tool", "shell(sleep)") as bridge:
            await conductor.next_cue()  # joined
            await conductor.call("cue", to="copilot-1", message="start the long job")
            await asyncio.to_thread(model.wait_for, lambda r: "start the long job" in cue_text(r))
            await asyncio.sleep(1)  # the job is running
            await conductor.call("cue", to="copilot-1", message="also check the logs")
            steered = await asyncio.to_thread(model.wait_for, lambda r: "also check the logs" in r.last_user_text())
            assert not any("exit code" in t for t in steered.tool_results())  # the job had not finished
            await bridge.wait_for_line(r"^copilot: noted$")
            assert conductor.notifications.empty() and "did not reach" not in bridge.output


@needs_cli
@pytest.mark.anyio
async def test_a_failed_prompt_is_shown_retried_and_then_handed_to_the_conductor(temporal, ensemble, tmp_path):
    failures = {"left": 4, "forever": False}  # the CLI tries a failing request 3 times itself

    def script(request: Request) -> Reply:
        if failures["forever"] or failures["left"] > 0:
            failures["left"] -= 1
            return Reply(text="bad key", status=401)
        return Reply(text="on it")

    with ScriptedModel(script) as model:
        # The bridge hands a cue on after half the undelivered timeout (6 s here, 90 s by default).
        async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
                running_bridge(temporal, ensemble, tmp_path, model, CLAUDE_TEMPO_UNDELIVERED_TIMEOUT="12") as bridge:
            await conductor.next_cue()  # joined
            # A model that fails for a moment: the cue is retried until it reaches it, and counts as delivered.
            await conductor.call("cue", to="copilot-1", message="first task")
            await bridge.wait_for_line(r"did not reach Copilot's model: Authentication failed with provider")
            await bridge.wait_for_line(r"retrying in \d+s")
            first = await asyncio.to_thread(model.wait_for, lambda r: "first task" in cue_text(r) and r.reply.status == 200)
            assert "first task" in first.last_user_text()
            await bridge.wait_for_line(r"^copilot: on it$")

            # A model that keeps failing: the cue goes to the conductor, as a dead player's cues do.
            failures["forever"] = True
            sent = await conductor.call("cue", to="copilot-1", message="second task")
            handed = await conductor.next_cue(timeout=40)
            assert handed["meta"]["kind"] == "undelivered" and handed["meta"]["for"] == "copilot-1"
            assert handed["content"] == "second task" and handed["meta"]["message_id"] == sent["message_id"] + "-undelivered"
            await bridge.wait_for_line(r"the cue from conductor went to conductor instead")
            assert bridge.output.count("went to conductor instead") == 1  # the first cue was not handed on
            assert await still_listed(temporal, ensemble, "copilot-1")  # the bridge handed it on, and stays
            assert "Traceback" not in bridge.output


@needs_cli
@pytest.mark.anyio
async def test_with_no_conductor_an_undeliverable_cue_goes_back_to_its_sender(temporal, ensemble, tmp_path):
    with ScriptedModel(lambda request: Reply(text="model down", status=503)) as model:
        async with play(temporal, ensemble) as alice, \
                running_bridge(temporal, ensemble, tmp_path, model, CLAUDE_TEMPO_UNDELIVERED_TIMEOUT="12") as bridge:
            await alice.call("set_name", name="alice")
            await alice.call("cue", to="copilot-1", message="are you there?")
            back = await alice.next_cue(timeout=60)
            assert back["meta"]["kind"] == "undelivered" and back["meta"]["for"] == "copilot-1"
            assert back["content"] == "are you there?"
            await bridge.wait_for_line(r"the cue from alice went to alice instead")
            assert await still_listed(temporal, ensemble, "copilot-1")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


async def still_listed(temporal, ensemble: str, name: str) -> bool:
    client = await tempo.connect(tempo.Config(address=temporal.address))
    return bool(await tempo.find_player(client, ensemble, name))


async def leaves_cleanly(bridge: Bridge, temporal, ensemble: str, how: str) -> None:
    """End the bridge as a user does; it must exit 0, without a traceback, and be gone from the ensemble."""
    assert await still_listed(temporal, ensemble, "copilot-1")
    if how == "SIGTERM":
        bridge.process.terminate()
    elif how == "Ctrl+C":  # the terminal signals the whole foreground group: tempo and the Copilot CLI
        os.killpg(bridge.process.pid, signal.SIGINT)
    else:  # Ctrl+D: the end of what is typed at the bridge's terminal
        bridge.type(b"\x04")
    code = await asyncio.to_thread(bridge.exit_code)
    assert code == 0, bridge.output
    assert not await still_listed(temporal, ensemble, "copilot-1")
    assert "Traceback" not in bridge.output and "Error" not in bridge.output, bridge.output


@needs_cli
@pytest.mark.anyio
async def test_typed_lines_are_prompts_and_ctrl_c_leaves_cleanly(temporal, ensemble, tmp_path):
    # SIGTERM and Ctrl+D end the tests above; Ctrl+C reaches the Copilot CLI as well.
    with ScriptedModel(lambda request: Reply(text=f"you said {request.last_user_text().split()[-1]}")) as model:
        async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
                running_bridge(temporal, ensemble, tmp_path, model, tty=True) as bridge:
            await conductor.next_cue()  # joined
            bridge.type(b"hello copilot\n")
            await bridge.wait_for_line(r"^copilot: you said copilot$")
            await leaves_cleanly(bridge, temporal, ensemble, "Ctrl+C")


@needs_cli
@pytest.mark.anyio
async def test_if_the_copilot_cli_dies_the_bridge_says_so_and_leaves(temporal, ensemble, tmp_path):
    with ScriptedModel() as model:
        async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
                running_bridge(temporal, ensemble, tmp_path, model) as bridge:
            await conductor.next_cue()  # joined
            cli = [pid for pid in children(bridge.process.pid) if Path(f"/proc/{pid}/exe").resolve() == COPILOT_CLI.resolve()]
            assert len(cli) == 1
            os.kill(cli[0], signal.SIGKILL)
            assert await asyncio.to_thread(bridge.exit_code) == 1
            assert "tempo: error: the Copilot CLI exited (status -9), so this bridge has left ensemble" in bridge.output
            assert not await still_listed(temporal, ensemble, "copilot-1")
            assert "Traceback" not in bridge.output


@needs_cli
@pytest.mark.anyio
async def test_recruit_starts_a_copilot_player_on_the_model_asked_for(temporal, ensemble, tmp_path, tmux_dir):
    from test_recruit import recruiter_env

    def script(request: Request) -> Reply:
        if "[tempo cue from conductor" in cue_text(request) and "count the files" in cue_text(request):
            return Reply(tool_calls=[("claude-tempo-cue", {"to": "conductor", "message": "three files"})])
        return Reply(text="ok")

    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    with ScriptedModel(script) as model:
        env = recruiter_env(tmp_path / "no-bin", tmux_dir, CLAUDE_TEMPO_CONDUCTOR="true", HOME=str(home),
                            COPILOT_CLI_PATH=str(COPILOT_CLI), COPILOT_PROVIDER_BASE_URL=model.base_url,
                            COPILOT_MODEL="the-default-model")
        async with play(temporal, ensemble, **env) as conductor:
            result = await conductor.call("recruit", name="copilot-2", directory=str(work), prompt="count the files",
                                          agent="copilot", model="the-asked-model")
            assert result["agent"] == "copilot" and result["message_id"]
            request = await asyncio.to_thread(model.wait_for, lambda r: "count the files" in cue_text(r), 60)
            assert request.body["model"] == "the-asked-model"
            answer = await cue_matching(conductor, "three files")
            assert answer["meta"]["from"] == "copilot-2"


def test_a_recruited_bridge_gets_its_model_and_provider_but_never_the_key():
    cfg = tempo.Config(copilot_model="m", copilot_provider_url="http://127.0.0.1:11434/v1", copilot_api_key="sk-secret-1",
                       copilot_allow_tools="write")
    env = tempo.bridge_env(cfg)
    assert env["COPILOT_BRIDGE_MODEL"] == "m" and env["COPILOT_PROVIDER_BASE_URL"] == "http://127.0.0.1:11434/v1"
    assert env["CLAUDE_TEMPO_COPILOT_ALLOW_TOOLS"] == "write"
    script = tempo._launch_script([*tempo.tempo_command(), "bridge"], env, "/tmp")
    assert "sk-secret-1" not in script and "COPILOT_PROVIDER_API_KEY" not in script


def shell(command: str, *segments: tuple[str, str]):
    """A shell permission request as the Copilot CLI 1.0.102 sends it (it marks nothing read-only)."""
    from copilot.generated.session_events import PermissionRequestShell, PermissionRequestShellCommand, PermissionRequestShellCommandSegment

    return PermissionRequestShell(
        can_offer_session_approval=False, commands=[PermissionRequestShellCommand(identifier=command, read_only=False)],
        full_command_text=command, has_write_file_redirection=False, intention="", possible_paths=[], possible_urls=[],
        command_segments=[PermissionRequestShellCommandSegment(full_command_text=t, identifier=i) for t, i in segments],
    )


def other(kind: str, **fields):
    from copilot.generated import session_events as events

    cls = {"write": events.PermissionRequestWrite, "read": events.PermissionRequestRead,
           "mcp": events.PermissionRequestMcp, "url": events.PermissionRequestUrl}[kind]
    defaults = {"write": dict(can_offer_session_approval=False, diff="", intention=""),
                "read": dict(intention=""), "mcp": dict(tool_title="", read_only=False), "url": dict(intention="")}[kind]
    return cls(**{**defaults, **fields})


POLICY_CASES = [  # (allowed patterns, request, allowed?)
    ("", lambda: shell("ls -la | wc -l", ("ls -la", "ls"), ("wc -l", "wc")), True),
    ("", lambda: shell("git status && git log -1", ("git status", "git status"), ("git log -1", "git log")), True),
    ("", lambda: shell("echo hi > f", ("echo hi", "echo")), False),  # the CLI drops the redirection from the segment
    ("", lambda: shell("find . -name x -delete", ("find . -name x -delete", "find")), False),
    ("", lambda: shell("cat $(rm -rf x)", ("cat $(rm -rf x)", "cat")), False),
    ("", lambda: shell("touch x", ("touch x", "touch")), False),
    ("shell(touch)", lambda: shell("touch x", ("touch x", "touch")), True),
    ("shell(git:*)", lambda: shell("git push", ("git push", "git push")), True),
    ("shell(git:*)", lambda: shell("gitea push", ("gitea push", "gitea")), False),
    ("shell(git push)", lambda: shell("git push && rm x", ("git push", "git push"), ("rm x", "rm")), False),
    ("shell", lambda: shell("make", ("make", "make")), True),
    ("", lambda: other("read", path="/etc/passwd"), True),
    ("", lambda: other("write", file_name="/w/a.py"), False),
    ("write(a.py)", lambda: other("write", file_name="/w/src/a.py"), True),
    ("write(/w/src)", lambda: other("write", file_name="/w/src/a.py"), True),
    ("write(/w/src)", lambda: other("write", file_name="/w/other/a.py"), False),
    ("", lambda: other("mcp", server_name="claude-tempo", tool_name="terminate"), True),  # tempo's own tools
    ("", lambda: other("mcp", server_name="github", tool_name="create_issue"), False),
    ("", lambda: other("mcp", server_name="github", tool_name="get_issue", read_only=True), True),
    ("github(create_issue)", lambda: other("mcp", server_name="github", tool_name="create_issue"), True),
    ("github", lambda: other("mcp", server_name="github", tool_name="merge"), True),
    ("", lambda: other("url", url="https://example.com/x"), False),
    ("url(*.github.com)", lambda: other("url", url="https://api.github.com/repos"), True),
    ("url(github.com)", lambda: other("url", url="http://github.com/"), False),  # patterns are https unless told
    ("*", lambda: other("write", file_name="/anything"), True),  # --allow-all-tools
]


@pytest.mark.parametrize("patterns,request_,allowed", POLICY_CASES)
def test_the_permission_policy(patterns, request_, allowed):
    assert tempo.PermissionPolicy(patterns).allows(request_()) is allowed


def test_a_bad_tool_pattern_is_an_error():
    with pytest.raises(tempo.TempoError, match=r"cannot read the tool pattern 'shell\(git'"):
        tempo.PermissionPolicy("write,shell(git")


@needs_cli
def test_preflight_for_copilot_checks_the_cli_and_the_model_provider(cli, tmp_path):
    env = dict(COPILOT_CLI_PATH=str(COPILOT_CLI), TEMPORAL_ADDRESS="127.0.0.1:9")
    with ScriptedModel() as model:
        done = cli("preflight", "--agent", "copilot", COPILOT_PROVIDER_BASE_URL=model.base_url, COPILOT_MODEL="m",
                   COPILOT_PROVIDER_API_KEY="sk-secret-never-shown", **env)
    assert "✓ Copilot SDK " in done.stdout
    assert f"✓ Copilot CLI 1.0.102 at {COPILOT_CLI}" in done.stdout
    assert f"✓ model provider {model.base_url} (openai, model m) reachable" in done.stdout
    assert "✓ bridge permission policy allows read-only tools and tempo's" in done.stdout
    assert "claude" not in done.stdout  # the bridge needs neither claude nor .mcp.json
    assert "sk-secret" not in done.stdout + done.stderr

    done = cli("preflight", "--agent", "copilot", COPILOT_PROVIDER_BASE_URL="http://127.0.0.1:9/v1", **env)
    assert "✗ a Copilot provider (http://127.0.0.1:9/v1) needs a model" in done.stdout
    assert "fix: set COPILOT_MODEL" in done.stdout and done.returncode == 1

    done = cli("preflight", "--agent", "copilot", **env)  # no provider, and a fresh HOME: not signed in
    assert "✗ Copilot is not signed in" in done.stdout
    assert "fix: sign in once by running `copilot` and typing /login" in done.stdout


def run_bridge(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_without_the_sdk_it_says_what_to_install():
    # sys.modules[name] = None is how Python itself marks a module as not importable.
    done = run_bridge("import sys; sys.modules['copilot'] = None; import tempo; sys.exit(tempo.main(['bridge']))")
    assert done.returncode == 1
    assert "tempo: error: the Copilot bridge needs the GitHub Copilot SDK: pip install 'claude-tempo[copilot]'" in done.stderr


def test_without_the_copilot_cli_it_says_what_to_install(tmp_path):
    env = {"PATH": os.path.dirname(sys.executable), "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path),
           "COPILOT_CLI_PATH": ""}
    done = run_bridge("import sys, tempo; sys.exit(tempo.main(['bridge']))", **env)
    assert done.returncode == 1
    assert "needs the GitHub Copilot CLI: run `python -m copilot download-runtime`" in done.stderr
    done = run_bridge("import sys, tempo; sys.exit(tempo.main(['bridge']))", **{**env, "COPILOT_CLI_PATH": "/nope"})
    assert "COPILOT_CLI_PATH='/nope' is not a file" in done.stderr


def test_model_and_provider_come_from_flags_environment_or_config_keys(cli):
    for key, value in (("copilot_provider_url", "http://127.0.0.1:11434/v1"), ("copilot_model", "from-file"),
                       ("copilot_api_key", "sk-secret-from-file-1234")):
        done = cli("config", "set", key, value)
        assert done.returncode == 0 and "sk-secret-from-file" not in done.stdout
    rows = {line.split()[0]: line.split()[1:] for line in cli("config", "show").stdout.splitlines()[1:]}
    assert rows["copilot_api_key"] == ["****1234", "file"] and rows["copilot_model"] == ["from-file", "file"]
    rows = {line.split()[0]: line.split()[1:] for line in cli("config", "show", COPILOT_MODEL="from-env").stdout.splitlines()[1:]}
    assert rows["copilot_model"] == ["from-env", "env"]
    rows = {line.split()[0]: line.split()[1:] for line in
            cli("config", "show", "--model", "from-flag", COPILOT_BRIDGE_MODEL="bridge", COPILOT_MODEL="x").stdout.splitlines()[1:]}
    assert rows["copilot_model"] == ["from-flag", "flag"]

    cfg = tempo.resolve_config({}, {"HOME": str(cli.home), "CLAUDE_TEMPO_HOME": cli.env["CLAUDE_TEMPO_HOME"],
                                    "COPILOT_BRIDGE_MODEL": "bridge", "COPILOT_MODEL": "cli-wide"})
    assert tempo.copilot_provider(cfg) == {"type": "openai", "base_url": "http://127.0.0.1:11434/v1",
                                           "api_key": "sk-secret-from-file-1234"}
    assert cfg.copilot_model == "bridge"  # COPILOT_BRIDGE_MODEL is for the bridge only: it wins
    assert "copilot_provider_type is one of openai, azure, anthropic" in cli("config", "set", "copilot_provider_type", "bad").stderr
    assert "cannot read the tool pattern" in cli("config", "set", "copilot_allow_tools", "shell(git").stderr
