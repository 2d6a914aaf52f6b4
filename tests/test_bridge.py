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
import time
from pathlib import Path

import pytest

import tempo
from conftest import ROOT, play, tempo_env, wait_until
from scripted_model import Reply, Request, ScriptedModel

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
        if self.process.poll() is None:
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
    home.mkdir(exist_ok=True)
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
async def test_a_cue_reaches_the_model_and_its_answer_comes_back_through_tempo(temporal, ensemble, tmp_path):
    def script(request: Request) -> Reply:
        if "[tempo cue from alice" in cue_text(request):
            return Reply(tool_calls=[("claude-tempo-cue", {"to": "alice", "message": "looks fine to me"})])
        return Reply(text="done")

    with ScriptedModel(script) as model:
        async with play(temporal, ensemble) as alice, running_bridge(temporal, ensemble, tmp_path, model) as bridge:
            await alice.call("set_name", name="alice")
            sent = await alice.call("cue", to="copilot-1", message="please review `x` for $bugs")
            request = await asyncio.to_thread(model.wait_for, lambda r: sent["message_id"] in cue_text(r))
            assert "please review `x` for $bugs" in request.last_user_text()
            assert "claude-tempo-cue" in request.tool_names()  # tempo's tools, as Copilot names MCP tools
            assert request.body["model"] == "scripted-model"

            answer = await alice.next_cue(timeout=30)
            assert answer["content"] == "looks fine to me" and answer["meta"]["from"] == "copilot-1"
            # The tool result went back to the model, and the bridge showed the model's last words.
            await asyncio.to_thread(model.wait_for, lambda r: any("message_id" in t for t in r.tool_results()))
            await bridge.wait_for_line(r"^copilot: done$")
            assert "Traceback" not in bridge.output
