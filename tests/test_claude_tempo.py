"""A claude-tempo 0.3 user feels at home: its program names, config.json, camelCase keys, its workflows.

The program names are tried the way pip installs console scripts: a small launcher file named
`claude-tempo` / `claude-tempo-server` that calls `tempo.entry`, so argv[0] is that name.
"""

import json
import shlex
import stat
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest

import tempo
from conftest import ROOT, play, wait_until

LAUNCHER = "#!{python}\nimport sys\nsys.path.insert(0, {root!r})\nfrom tempo import entry\nentry()\n"


@pytest.fixture
def programs(tmp_path) -> Path:
    """A bin directory with `claude-tempo` and `claude-tempo-server` as pip would install them."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("claude-tempo", "claude-tempo-server"):
        path = bindir / name
        path.write_text(LAUNCHER.format(python=sys.executable, root=str(ROOT)))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bindir


def write_json(home: Path, data: dict) -> Path:
    path = home / ".claude-tempo" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


# -- program names ----------------------------------------------------------------------------


def test_pyproject_installs_the_claude_tempo_names():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["claude-tempo"] == scripts["claude-tempo-server"] == scripts["tempo"] == "tempo:entry"


@pytest.mark.anyio
async def test_claude_tempo_server_serves_and_claude_tempo_runs_commands(temporal, ensemble, programs, cli):
    path = f"{programs}:{cli.env['PATH']}"
    # An .mcp.json written for claude-tempo runs `claude-tempo-server` by name, found on PATH.
    async with (
        play(temporal, ensemble, command=("claude-tempo-server", []), PATH=path) as old,
        play(temporal, ensemble) as new,
    ):
        await old.call("set_name", name="veteran")
        await new.call("cue", to="veteran", message="welcome back")
        assert (await old.next_cue())["content"] == "welcome back"
        status = subprocess.run([str(programs / "claude-tempo"), "status", ensemble],
                                env={**cli.env, "TEMPORAL_ADDRESS": temporal.address}, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and "veteran" in status.stdout, status.stdout + status.stderr
    version = subprocess.run([str(programs / "claude-tempo"), "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.strip() == f"tempo {tempo.__version__}"


# -- configuration ------------------------------------------------------------------------------


def test_config_json_sits_between_config_toml_and_the_temporal_profile(tmp_path):
    write_json(tmp_path, {"temporalAddress": "json.example:7233", "temporalNamespace": "json-ns",
                          "temporalApiKey": "json-key-0123456789", "temporalTlsCertPath": "~/c.pem",
                          "temporalTlsKeyPath": "~/c.key", "defaultAgent": "copilot", "restorePolicy": "never"})
    profiles = tmp_path / "temporal.toml"
    profiles.write_text('[profile.default]\naddress = "profile.example:7233"\nnamespace = "profile-ns"\n')
    env = {"HOME": str(tmp_path), "CLAUDE_TEMPO_HOME": str(tmp_path / ".claude-tempo"), "TEMPORAL_CONFIG_FILE": str(profiles)}
    cfg = tempo.resolve_config({}, env)
    assert (cfg.address, cfg.sources["address"]) == ("json.example:7233", "config.json")  # beats the profile
    assert (cfg.namespace, cfg.api_key) == ("json-ns", "json-key-0123456789")
    assert (cfg.tls_cert, cfg.tls_key) == ("~/c.pem", "~/c.key")  # read where used, like every path setting
    (tmp_path / ".claude-tempo" / "config.toml").write_text('address = "toml.example:7233"\n')
    cfg = tempo.resolve_config({}, env)
    assert (cfg.address, cfg.sources["address"]) == ("toml.example:7233", "file")  # config.toml beats it
    assert cfg.sources["namespace"] == "config.json"
    assert tempo.resolve_config({}, {**env, "TEMPORAL_NAMESPACE": "env-ns"}).namespace == "env-ns"


def test_config_show_names_config_json_as_the_source(cli):
    write_json(cli.home, {"temporalAddress": "json.example:7233", "temporalApiKey": "json-key-0123456789"})
    result = cli("config", "show")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line and not line.endswith(")")}
    assert rows["address"] == ["json.example:7233", "config.json"]
    assert rows["api_key"] == ["****6789", "config.json"]
    assert "json-key-0123456789" not in result.stdout
    assert f"also read: {cli.home / '.claude-tempo' / 'config.json'}" in result.stdout


def test_a_broken_config_json_is_skipped_with_line_and_column_and_left_alone(cli):
    path = write_json(cli.home, {})
    path.write_text('{"temporalAddress": "x:1",\n  oops}\n')
    before = path.read_bytes()
    result = cli("config", "show")
    assert result.returncode == 0
    assert f"{path} is not valid JSON (line 2, column 3" in result.stderr
    assert path.read_bytes() == before


def test_config_set_and_unset_take_claude_tempo_key_names(cli, tmp_path):
    assert cli("config", "set", "temporalAddress", "camel.example:7233").returncode == 0
    assert cli("config", "set", "temporalNamespace", "camel-ns").returncode == 0
    assert cli("config", "set", "temporalApiKey", "camel-key-0123456789").returncode == 0
    assert cli("config", "set", "temporalTlsCertPath", "client.pem", cwd=tmp_path).returncode == 0
    doc = tomllib.loads(cli.config.read_text())
    assert doc == {"address": "camel.example:7233", "namespace": "camel-ns", "api_key": "camel-key-0123456789",
                   "tls_cert": str(tmp_path / "client.pem")}
    assert cli("config", "unset", "temporalApiKey").returncode == 0
    assert "api_key" not in tomllib.loads(cli.config.read_text())
    unknown = cli("config", "set", "temporalColour", "blue")
    assert unknown.returncode == 1 and "temporalAddress" in unknown.stderr


def test_tempo_config_offers_to_import_config_json_and_leaves_it_untouched(temporal, cli):
    path = write_json(cli.home, {"temporalAddress": temporal.address, "temporalNamespace": "default", "defaultAgent": "claude"})
    before = path.read_bytes()
    # y: import; then Enter keeps each value it now offers (address, namespace, authentication none).
    result = cli("config", input="y\n\n\n\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Found claude-tempo's" in result.stderr and f"address = {temporal.address}" in result.stderr
    assert tomllib.loads(cli.config.read_text()) == {"address": temporal.address, "namespace": "default"}
    assert path.read_bytes() == before
    again = cli("config", input="\n\n\n")  # nothing new to import: no question
    assert again.returncode == 0 and "Found claude-tempo's" not in again.stderr


# -- claude-tempo's workflows on tempo's task queue ---------------------------------------------


@pytest.mark.anyio
async def test_foreign_workflows_on_the_task_queue_are_named_with_the_command_to_end_them(temporal, ensemble, cli, tmp_path):
    queue = f"tq-{uuid.uuid4().hex[:8]}"  # no worker of other tests polls it
    client = await tempo.connect(tempo.Config(address=temporal.address))
    for i in range(2):  # what claude-tempo 0.3 starts: its own workflow type, on the same queue
        await client.start_workflow("claudeSessionWorkflow", {"ensemble": "old"}, id=f"claude-session-old-{queue}-{i}",
                                    task_queue=queue)
    project = tmp_path / "project"
    project.mkdir()
    env = {"TEMPORAL_ADDRESS": temporal.address, "CLAUDE_TEMPO_TASK_QUEUE": queue}
    async with play(temporal, ensemble, **env) as player:  # tempo's own player on the queue is not foreign
        await player.call("set_name", name="mine")
        results = {name: cli(*argv, **env) for name, argv in (
            ("preflight", ["preflight", "-d", str(project)]), ("status", ["status"]), ("up", ["up", ensemble, "-d", str(project)]))}
    said = f"2 running workflows on task queue {queue} are not tempo's (claudeSessionWorkflow"
    commands = set()
    for name, result in results.items():
        assert result.stdout.count(said) == 1, (name, result.stdout, result.stderr)
        assert "CLAUDE_TEMPO_TASK_QUEUE=tempo" in result.stdout
        line = next(l for l in result.stdout.splitlines() if "temporal workflow terminate" in l)
        commands.add(line[line.index("temporal workflow terminate"):line.index(" --yes") + len(" --yes")])
    assert f"✗ {said}" in results["preflight"].stdout
    assert len(commands) == 1
    argv = shlex.split(commands.pop())
    argv[0] = tempo.temporal_binary()
    subprocess.run(argv, check=True, capture_output=True, timeout=60)

    async def ended():
        return (await client.count_workflows(tempo._foreign_query(queue))).count == 0

    await wait_until(ended, timeout=30)
    assert "not tempo's" not in cli("status", **env).stdout


# -- the bridge ---------------------------------------------------------------------------------


def test_bridge_takes_its_name_from_copilot_bridge_name_unless_given_one():
    named = tempo.bridge_config(tempo.Config(), {"COPILOT_BRIDGE_NAME": "copilot-7"})
    assert named.name == "copilot-7"
    assert tempo.bridge_config(tempo.Config(name="mine"), {"COPILOT_BRIDGE_NAME": "copilot-7"}).name == "mine"
    with pytest.raises(tempo.TempoError, match="invalid COPILOT_BRIDGE_NAME"):
        tempo.bridge_config(tempo.Config(), {"COPILOT_BRIDGE_NAME": "no spaces"})
