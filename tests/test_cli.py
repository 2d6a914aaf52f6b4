"""The CLI as a user types it: parsing, status, server, up, start / conduct, preflight, exit codes."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from docopt import docopt

import tempo
from conftest import ROOT, free_port, play, tools_path, wait_until

# -- parsing is data: usage + argv -> the options a command sees ---------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        ("up", {"up": True, "<ensemble>": None}),
        ("up team -d /src", {"up": True, "<ensemble>": "team", "--dir": "/src"}),
        ("up --agent codex --lineup team.toml", {"up": True, "--agent": "codex", "--lineup": "team.toml"}),
        ("server --background", {"server": True, "--background": True}),
        ("start team -n alice --skip-preflight", {"start": True, "<ensemble>": "team", "--name": "alice", "--skip-preflight": True}),
        ("conduct --temporal-address h:1 --temporal-namespace ns", {"conduct": True, "--temporal-address": "h:1", "--temporal-namespace": "ns"}),
        ("status --json", {"status": True, "--json": True, "<ensemble>": None}),
        ("status team", {"status": True, "<ensemble>": "team", "--json": False}),
        ("config", {"config": True, "show": False, "set": False, "unset": False}),
        ("config set api_key K", {"config": True, "set": True, "<key>": "api_key", "<value>": "K"}),
        ("config unset address", {"config": True, "unset": True, "<key>": "address"}),
        ("config show --profile cloud", {"config": True, "show": True, "--profile": "cloud"}),
        ("preflight -d here", {"preflight": True, "--dir": "here"}),
        ("tasks team --state open", {"tasks": True, "task": None, "<ensemble>": "team", "--state": "open"}),
        ("task add fix-it team --role reviewer --after 1,2", {"task": True, "add": True, "<title>": "fix-it",
                                                             "<ensemble>": "team", "--role": "reviewer", "--after": "1,2"}),
    ],
)
def test_usage_parses(argv, expected):
    args = tempo._parse_args(argv.split())
    assert {k: args[k] for k in expected} == expected


def test_every_command_has_its_own_usage_and_help_for_it():
    for command in tempo.COMMANDS:
        usage = tempo._command_usage(command)
        assert f"tempo {command}" in usage.split("Usage:")[1], command
        with pytest.raises(SystemExit) as shown:  # the whole text parses as docopt's grammar: --help prints it
            docopt(usage, [command, "--help"] if command not in ("hook", "help") else [command, "-h"])
        assert shown.value.code in (None, 0)
    assert set(tempo.COMMANDS) >= {line.split()[0] for line in tempo.__doc__.split("Commands:")[1].split("\n\n")[0].splitlines()
                                    if line[:3] == "  " + line[2:3] and line[2:3].isalpha()}


@pytest.mark.parametrize(
    "argv, refused, said",
    [
        ("status --model=x --lineup=f.toml", "tempo status", "`tempo status` does not take --model, --lineup"),  # others' options
        ("init --lineup=f.toml", "tempo init", "`tempo init` does not take --lineup"),
        ("dashboard --json", "tempo dashboard", "`tempo dashboard` does not take --json"),
        ("schedule add s --to bob --message m", "tempo schedule add", "`tempo schedule` is not used that way"),  # no when
        ("lineup save", "tempo lineup save <file>", "`tempo lineup` is not used that way"),  # its file is missing
        ("permit r1 maybe", "tempo permit", "`tempo permit` is not used that way"),
    ],
)
def test_a_command_refuses_what_its_usage_does_not_say(cli, argv, refused, said):
    result = cli(*argv.split())
    assert result.returncode == 2 and result.stdout == "", result.stderr
    command = argv.split()[0]
    assert result.stderr.startswith(f"tempo: error: {said}; `tempo help {command}` shows what it takes\nUsage:\n"), result.stderr
    assert refused in result.stderr
    others = [c for c in tempo.COMMANDS if c != command and f"  tempo {c} " in result.stderr]
    assert not others, f"the usage shown is {command}'s alone, not {others}'s"


def test_help_lists_commands_and_shows_one_commands_usage(cli):
    top = cli("--help")
    assert top.returncode == 0 and all(f"\n  {c} " in top.stdout for c in tempo.COMMANDS if c != "help")
    for argv in (("help", "schedule"), ("schedule", "--help")):
        one = cli(*argv)
        assert one.returncode == 0 and "tempo schedule add <schedule>" in one.stdout and "--cron=<expr>" in one.stdout
        assert "tempo status" not in one.stdout and "--temporal-address=<host:port>" in one.stdout
    unknown = cli("help", "nope")
    assert unknown.returncode == 2 and "no command 'nope'" in unknown.stderr
    typo = cli("stauts")
    assert typo.returncode == 2 and "no command 'stauts'" in typo.stderr and "tempo <command>" in typo.stderr


def test_help_piped_into_a_reader_that_has_left_ends_quietly(cli):
    """`tempo help up | head -1`: the reader is gone before tempo writes (a closed pipe); no traceback, exit 0."""
    from conftest import TEMPO

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left: every write to the pipe fails (EPIPE)
    try:
        writer = subprocess.run([*TEMPO, "help", "up"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                                env=cli.env, timeout=60)
    finally:
        os.close(write_end)
    assert writer.returncode == 0 and "Traceback" not in writer.stderr and "BrokenPipe" not in writer.stderr, writer.stderr


def test_usage_errors_exit_2_and_tempo_errors_exit_1(cli):
    bad = cli("status", "--no-such-flag")
    assert bad.returncode == 2 and "Usage:" in bad.stderr and bad.stdout == ""
    wrong = cli("start", "-n", "not a name", "--skip-preflight")
    assert wrong.returncode == 1 and wrong.stderr.startswith("tempo: error: invalid name")
    assert cli("help").stdout.startswith("tempo:") and cli("--version").stdout.strip() == f"tempo {tempo.__version__}"


# -- status ------------------------------------------------------------------------------------


def test_status_of_an_empty_ensemble_and_of_an_unreachable_server(cli, temporal, ensemble):
    result = cli("status", ensemble, TEMPORAL_ADDRESS=temporal.address)
    assert result.returncode == 0, result.stderr
    assert f"Temporal {temporal.address} (namespace default): reachable" in result.stdout
    assert f"no active sessions in ensemble {ensemble}" in result.stdout
    down = cli("status", "--json", TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    assert down.returncode == 1
    health = json.loads(down.stdout)["temporal"]
    assert health["reachable"] is False and "refused" in health["error"].lower()


@pytest.mark.anyio
async def test_status_lists_players_and_marks_the_conductor(cli, temporal, ensemble, tmp_path):
    async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="alice", cwd=str(tmp_path)) as alice:
        await alice.call("set_part", part="writing the parser")
        await conductor.call("ensemble")

        def status_json():
            result = cli("status", ensemble, "--json", TEMPORAL_ADDRESS=temporal.address)
            assert result.returncode == 0, result.stderr
            data = json.loads(result.stdout)
            parts = {p["name"]: p["part"] for p in data["players"]}
            return data if parts.get("alice") == "writing the parser" and "conductor" in parts else None

        data = await wait_until(lambda: asyncio.to_thread(status_json), timeout=20, interval=0.3)
        assert data["temporal"]["reachable"] is True and data["ensemble"] == ensemble
        by_name = {p["name"]: p for p in data["players"]}
        assert by_name["conductor"]["conductor"] is True and by_name["alice"]["conductor"] is False
        assert by_name["alice"]["directory"] == str(tmp_path)
        assert {"name", "part", "directory", "branch", "host", "ensemble", "started"} <= set(by_name["alice"])

        table = await asyncio.to_thread(cli, "status", ensemble, TEMPORAL_ADDRESS=temporal.address)
        lines = table.stdout.splitlines()
        assert "2 active sessions in ensemble " + ensemble in table.stdout
        assert lines[2].split()[:6] == ["NAME", "ROLE", "PART", "DIRECTORY", "BRANCH", "HOST"]
        assert lines[3].split()[:2] == ["conductor", "conductor"]
        assert lines[4].startswith("alice ") and "writing the parser" in lines[4]

        # all ensembles: the same players, with an ENSEMBLE column
        everything = await asyncio.to_thread(cli, "status", "--json", TEMPORAL_ADDRESS=temporal.address)
        assert {p["name"] for p in json.loads(everything.stdout)["players"] if p["ensemble"] == ensemble} == {"conductor", "alice"}

        # one conductor per ensemble: `conduct` refuses a second, `up` reuses the first
        refused = await asyncio.to_thread(cli, "conduct", ensemble, "--skip-preflight", TEMPORAL_ADDRESS=temporal.address)
        assert refused.returncode == 1
        assert f"ensemble {ensemble!r} already has a conductor" in refused.stderr
        up = await asyncio.to_thread(cli, "up", ensemble, "-d", str(tmp_path), TEMPORAL_ADDRESS=temporal.address)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"conductor already running in ensemble {ensemble}" in up.stdout


# -- server ------------------------------------------------------------------------------------


def test_server_background_start_record_reuse_and_stop(cli, ensemble):
    address = f"127.0.0.1:{free_port()}"
    started = cli("server", "--background", TEMPORAL_ADDRESS=address)
    record_path = Path(cli.env["CLAUDE_TEMPO_HOME"]) / "server.json"
    pid = json.loads(record_path.read_text())["pid"] if record_path.exists() else None
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        record = json.loads(record_path.read_text())
        assert record["address"] == address and tempo._pid_alive(pid)
        assert Path(record["log"]).is_file() and record["db"].startswith(cli.env["CLAUDE_TEMPO_HOME"])
        assert f"Web UI: {record['ui']}" in started.stdout and "search attributes registered" in started.stdout

        status = json.loads(cli("status", "--json", TEMPORAL_ADDRESS=address).stdout)
        assert status["temporal"]["reachable"] and status["temporal"]["server"]["pid"] == pid

        again = cli("server", "--background", TEMPORAL_ADDRESS=address)
        assert again.returncode == 0 and "already running" in again.stdout and f"pid {pid}" in again.stdout
        assert json.loads(record_path.read_text())["pid"] == pid
        # its attributes are registered: a player can run there
        assert "no active sessions" in cli("status", ensemble, TEMPORAL_ADDRESS=address).stdout
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while tempo._pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not tempo._pid_alive(pid)
    after = cli("status", "--json", TEMPORAL_ADDRESS=address)
    assert after.returncode == 1 and json.loads(after.stdout)["temporal"]["server"] is None


def test_server_reuses_a_running_server_in_the_foreground_too(cli, temporal):
    result = cli("server", TEMPORAL_ADDRESS=temporal.address)
    assert result.returncode == 0 and "already running" in result.stdout
    assert not (Path(cli.env["CLAUDE_TEMPO_HOME"]) / "server.json").exists()


def test_server_refuses_a_remote_address(cli):
    result = cli("server", "--temporal-address", "203.0.113.9:7233", TEMPORAL_ADDRESS=None)
    assert result.returncode == 1 and "not on this machine" in result.stderr


# -- up ----------------------------------------------------------------------------------------


@pytest.fixture
def standin(tmp_path) -> tuple[Path, Path]:
    """A stand-in `claude` on PATH that records how it was started: (its directory, its record)."""
    folder, record = tmp_path / "standin-bin", tmp_path / "claude-started.json"
    folder.mkdir()
    script = folder / "claude"
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump({{'argv': sys.argv, 'cwd': os.getcwd(), 'env': dict(os.environ)}}, open({str(record)!r}, 'w'))\n"
        "sys.exit(7)\n"
    )
    script.chmod(0o755)
    return folder, record


def test_up_is_idempotent_and_prints_a_working_conductor_command(cli, temporal, ensemble, tmp_path, standin):
    project = tmp_path / "project"
    project.mkdir()
    first = cli("up", ensemble, "-d", str(project), TEMPORAL_ADDRESS=temporal.address)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("✓ temporal CLI: ")
    assert any(line.startswith("✓ Temporal server already running at " + temporal.address) for line in lines)
    assert "✓ search attributes registered in namespace default" in lines
    assert f"✓ {project / '.mcp.json'} created" in lines
    assert "\x1b[" not in first.stdout  # no colour when stdout is not a terminal
    todo = lines.index("… start the conductor by running this in a new terminal:")
    command = lines[todo + 1].strip()
    assert "Next steps:" in lines and f"tempo start {ensemble} -n NAME" in first.stdout
    mcp = (project / ".mcp.json").read_text()

    second = cli("up", ensemble, "-d", str(project), TEMPORAL_ADDRESS=temporal.address)
    assert second.returncode == 0
    assert f"✓ {project / '.mcp.json'} already configured" in second.stdout
    assert (project / ".mcp.json").read_text() == mcp

    # The printed command is what a terminal will run: it starts claude as this ensemble's conductor.
    folder, record = standin
    subprocess.run(["sh", "-c", command], env={"PATH": f"{folder}:{tools_path()}"}, check=False, timeout=30)
    started = json.loads(record.read_text())
    assert started["argv"][1:] == tempo.CHANNELS_FLAG and started["cwd"] == str(project)
    assert started["env"]["CLAUDE_TEMPO_CONDUCTOR"] == "true"
    assert started["env"]["CLAUDE_TEMPO_ENSEMBLE"] == ensemble
    assert started["env"]["TEMPORAL_ADDRESS"] == temporal.address


def test_up_agent_codex_sets_up_codex_and_prints_a_codex_conductor_command(cli, temporal, ensemble, tmp_path):
    """`tempo up --agent codex`: the project's .codex/ (not .mcp.json), Codex's trust step, a Codex conductor's command;
    an agent that cannot conduct (the Copilot bridge) is refused before anything starts."""
    project = tmp_path / "project"
    project.mkdir()
    refused = cli("up", ensemble, "--agent", "copilot", "-d", str(project), TEMPORAL_ADDRESS=temporal.address)
    assert refused.returncode == 1 and refused.stdout == "", refused.stdout
    assert "unknown agent 'copilot' for a conductor: use --agent claude or --agent codex" in refused.stderr
    result = cli("up", ensemble, "--agent", "codex", "-d", str(project), TEMPORAL_ADDRESS=temporal.address)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"✓ {project / '.codex' / 'config.toml'} created" in lines and f"✓ {project / '.codex' / 'hooks.json'} created" in lines
    assert not (project / ".mcp.json").exists()
    assert f"Codex reads {project}/.codex/ only in a trusted project" in result.stdout
    command = lines[lines.index("… start the conductor by running this in a new terminal:") + 1].strip()
    assert command.endswith(" codex --no-alt-screen --dangerously-bypass-hook-trust"), command
    assert "CLAUDE_TEMPO_CONDUCTOR=true" in command and f"CLAUDE_TEMPO_ENSEMBLE={ensemble}" in command
    assert f"tempo start {ensemble} --agent codex -n NAME" in result.stdout  # the next step starts a Codex player too


def test_up_fails_clearly_when_a_remote_server_is_down(cli):
    result = cli("up", "--temporal-address", "203.0.113.9:7233")
    assert result.returncode == 1 and "✗" in result.stdout and "not on this machine" in result.stdout


# -- start / conduct and preflight ---------------------------------------------------------------


def test_preflight_fails_with_fixes_then_passes(cli, temporal, tmp_path, standin):
    project = tmp_path / "project"
    project.mkdir()
    failing = cli("preflight", "-d", str(project), TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    assert failing.returncode == 1
    out = failing.stdout
    assert out.startswith("✓ Python ")
    assert "✗ Temporal unreachable at" in out and "fix: start it with `tempo server --background`" in out
    assert "✗ claude not on PATH" in out and "npm install -g @anthropic-ai/claude-code" in out
    assert "✓ server command" in out
    assert f"✗ {project / '.mcp.json'} missing" in out and f"fix: run `tempo init` in {project}" in out
    assert "✗ tempo's Claude Code hooks are not installed" in out

    folder, _ = standin
    assert cli("init", "-d", str(project)).returncode == 0
    passing = cli("preflight", "-d", str(project), TEMPORAL_ADDRESS=temporal.address, PATH=f"{folder}:{tools_path()}")
    assert passing.returncode == 0, passing.stdout
    assert "✗" not in passing.stdout and passing.stdout.count("✓") == 6
    assert f"✓ Claude Code hooks installed ({project / '.claude' / 'settings.local.json'})" in passing.stdout


def test_start_execs_claude_in_the_directory_with_the_session_environment(cli, temporal, ensemble, tmp_path, standin):
    folder, record = standin
    project = tmp_path / "project"
    project.mkdir()
    assert cli("init", "-d", str(project)).returncode == 0
    path = f"{folder}:{tools_path()}"
    result = cli("start", ensemble, "-n", "alice", "-d", str(project),
                 TEMPORAL_ADDRESS=temporal.address, PATH=path, CLAUDE_TEMPO_CONDUCTOR="true")
    assert result.returncode == 7, result.stderr  # exec: claude's exit code is tempo's
    started = json.loads(record.read_text())
    assert Path(started["argv"][0]).name == "claude" and started["argv"][1:] == tempo.CHANNELS_FLAG
    assert started["cwd"] == str(project)
    env = started["env"]
    assert (env["CLAUDE_TEMPO_ENSEMBLE"], env["CLAUDE_TEMPO_PLAYER_NAME"]) == (ensemble, "alice")
    assert env["TEMPORAL_ADDRESS"] == temporal.address and "CLAUDE_TEMPO_CONDUCTOR" not in env

    record.unlink()
    conduct = cli("conduct", ensemble, "-d", str(project), TEMPORAL_ADDRESS=temporal.address, PATH=path)
    assert conduct.returncode == 7, conduct.stderr
    assert json.loads(record.read_text())["env"]["CLAUDE_TEMPO_CONDUCTOR"] == "true"


def test_a_portable_mcp_json_is_read_as_claude_code_reads_it(cli, temporal, ensemble, tmp_path, standin):
    """${VAR} and ${VAR:-default} expanded, a bare program found on PATH: preflight passes, start
    starts, init keeps the entry as written; an unset variable is named, with the fix that sets it."""
    folder, record = standin
    project = tmp_path / "project"
    project.mkdir()
    (cli.home / ".local" / "lib").mkdir(parents=True)
    (cli.home / ".local" / "lib" / "tempo.py").symlink_to(ROOT / "tempo.py")  # this tempo, installed under ~
    python = Path(sys.executable)
    entry = {"command": python.name, "args": ["${HOME}/.local/lib/tempo.py", "serve"],
             "env": {"CLAUDE_TEMPO_ENSEMBLE": "${TEMPO_TEAM:-team}"}}
    text = json.dumps({"mcpServers": {"claude-tempo": entry}}, indent=2) + "\n"
    (project / ".mcp.json").write_text(text)
    path = f"{folder}:{python.parent}:{tools_path()}"
    assert "already configured" in cli("init", "-d", str(project), PATH=path).stdout
    assert (project / ".mcp.json").read_text() == text  # a working entry is never rewritten
    passing = cli("preflight", "-d", str(project), TEMPORAL_ADDRESS=temporal.address, PATH=path)
    assert passing.returncode == 0, passing.stdout
    assert (f"✓ {project / '.mcp.json'} starts {python.parent / python.name} {cli.home}/.local/lib/tempo.py serve "
            f"(written {python.name} ${{HOME}}/.local/lib/tempo.py serve)") in passing.stdout
    started = cli("start", ensemble, "-n", "alice", "-d", str(project), TEMPORAL_ADDRESS=temporal.address, PATH=path)
    assert started.returncode == 7, started.stderr  # preflight passed: claude ran
    assert record.exists()

    entry["args"][0] = "${TEMPO_CHECKOUT}/tempo.py"
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": {"claude-tempo": entry}}))
    failing = cli("preflight", "-d", str(project), TEMPORAL_ADDRESS=temporal.address, PATH=path)
    assert failing.returncode == 1
    assert f"✗ {project / '.mcp.json'} starts {python.name} ${{TEMPO_CHECKOUT}}/tempo.py serve: TEMPO_CHECKOUT not set" in failing.stdout
    assert "fix: set TEMPO_CHECKOUT where Claude Code starts" in failing.stdout and "tempo init" not in failing.stdout
    assert cli("preflight", "-d", str(project), TEMPORAL_ADDRESS=temporal.address, PATH=path,
               TEMPO_CHECKOUT=str(ROOT)).returncode == 0


def test_start_stops_at_a_failed_preflight_or_a_missing_claude(cli, temporal, ensemble, tmp_path, standin):
    folder, record = standin
    failed = cli("start", ensemble, "-d", str(tmp_path), TEMPORAL_ADDRESS=temporal.address,
                 PATH=f"{folder}:{tools_path()}")
    assert failed.returncode == 1
    assert "✗" in failed.stderr and "tempo: error: preflight failed" in failed.stderr and "--skip-preflight" in failed.stderr
    assert not record.exists()
    missing = cli("start", ensemble, "-d", str(tmp_path), "--skip-preflight", TEMPORAL_ADDRESS=temporal.address)
    assert missing.returncode == 1 and "npm install -g @anthropic-ai/claude-code" in missing.stderr
