"""The shipped artifacts: build the shiv zipapp and the one-file binary, then run them for real.

`scripts/build` writes dist/tempo.pyz and dist/tempo; each is run the way a user runs it (the
zipapp by the base interpreter, outside any virtualenv, with no PYTHONPATH), as a CLI and as the
MCP server two Claude Code sessions start. Marked `dist` (about a minute and a half, most of it the
build): `pytest -m "not dist"` skips it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import tempo
from conftest import ROOT, free_port, play

pytestmark = pytest.mark.dist

DIST = ROOT / "dist"
SHIV_ROOT = DIST / ".shiv"  # where the zipapp unpacks: inside dist/, wiped before each build
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)  # no virtualenv packages
BINARY = DIST / ("tempo.exe" if os.name == "nt" else "tempo")
TOOLS = {"ensemble", "cue", "set_name", "set_part", "listen"}


@pytest.fixture(scope="module")
def artifacts() -> dict[str, tuple[str, list[str]]]:
    """Build both artifacts once; return how to run each: (executable, leading args)."""
    shutil.rmtree(SHIV_ROOT, ignore_errors=True)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build")], cwd=ROOT, check=True, timeout=600)
    return {"zipapp": (BASE_PYTHON, [str(DIST / "tempo.pyz")]), "binary": (str(BINARY), [])}


def artifact_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "SHIV_"))}
    return {**env, "SHIV_ROOT": str(SHIV_ROOT), **extra}


def run(exe: str, args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, env=artifact_env(**env))


@pytest.mark.parametrize("kind", ["zipapp", "binary"])
def test_version_and_help(artifacts, kind):
    exe, args = artifacts[kind]
    version = run(exe, [*args, "--version"])
    assert (version.returncode, version.stdout.strip()) == (0, f"tempo {tempo.__version__}"), version.stderr
    helped = run(exe, [*args, "--help"])
    assert helped.returncode == 0, helped.stderr
    assert "Usage:" in helped.stdout and "tempo <command>" in helped.stdout and "\n  serve " in helped.stdout
    served = run(exe, [*args, "help", "serve"])  # a command's own usage, from inside the artifact too
    assert served.returncode == 0 and "tempo serve" in served.stdout, served.stderr


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["zipapp", "binary"])
async def test_serve_answers_tools_and_delivers_a_cue(artifacts, kind, temporal, ensemble):
    exe, args = artifacts[kind]
    command = (exe, [*args, "serve"])
    env = {"PYTHONPATH": "", "SHIV_ROOT": str(SHIV_ROOT)}
    async with play(temporal, ensemble, command=command, **env) as a, play(temporal, ensemble, command=command, **env) as b:
        assert TOOLS <= {t.name for t in (await a.client.list_tools()).tools}
        assert a.initialize.capabilities.experimental == {"claude/channel": {}}
        await a.call("set_name", name="alice")
        await b.call("set_name", name="bob")
        sent = await a.call("cue", to="bob", message=f"hello from the {kind}")
        cue = await b.next_cue()
        assert cue["content"] == f"hello from the {kind}"
        assert cue["meta"]["from"] == "alice" and cue["meta"]["message_id"] == sent["message_id"]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["zipapp", "binary"])
async def test_tempo_server_name_serves_mcp(artifacts, kind, temporal, ensemble, tmp_path):
    exe, args = artifacts[kind]
    if kind == "zipapp":
        link = tmp_path / "tempo-server.pyz"
        link.symlink_to(args[0])
        command = (exe, [str(link)])
    else:
        link = tmp_path / "tempo-server"
        link.symlink_to(exe)
        command = (str(link), [])
    async with play(temporal, ensemble, command=command, PYTHONPATH="", SHIV_ROOT=str(SHIV_ROOT)) as p:
        assert TOOLS <= {t.name for t in (await p.client.list_tools()).tools}
        listing = await p.call("ensemble")
        assert [pl["name"] for pl in listing["players"] if pl.get("you")]


@pytest.mark.parametrize("kind", ["zipapp", "binary"])
def test_init_points_mcp_json_at_the_artifact(artifacts, kind, tmp_path):
    exe, args = artifacts[kind]
    result = run(exe, [*args, "init", "--dir", str(tmp_path)], HOME=str(tmp_path))
    assert result.returncode == 0, result.stderr
    server = json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"][tempo.SERVER_NAME]
    assert [server["command"], *server["args"]] == [os.path.abspath(exe), *args, "serve"]


def test_zipapp_server_runs_its_embedded_dev_server(artifacts, tmp_path):
    """`tempo server` from the zipapp starts the temporal CLI it carries, nothing else installed."""
    exe, args = artifacts["zipapp"]
    address = f"127.0.0.1:{free_port()}"
    env = {"CLAUDE_TEMPO_HOME": str(tmp_path), "CLAUDE_TEMPO_TEMPORAL": "", "PATH": "/usr/bin:/bin"}
    result = run(exe, [*args, "server", "--background", f"--temporal-address={address}"], **env)
    pid = json.loads((tmp_path / "server.json").read_text())["pid"] if (tmp_path / "server.json").exists() else None
    try:
        assert result.returncode == 0, result.stderr
        assert Path(os.readlink(f"/proc/{pid}/exe")).is_relative_to(SHIV_ROOT)
        again = run(exe, [*args, "server", "--background", f"--temporal-address={address}"], **env)
        assert again.returncode == 0 and "reused" in again.stdout, again.stdout + again.stderr
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)


def test_help_and_version_import_neither_temporalio_nor_mcp():
    for flag in ("--help", "--version"):
        result = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "tempo.py"), flag],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0
        imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
        assert not {m for m in imported if m.split(".")[0] in ("temporalio", "mcp", "pydantic", "tempo_workflows")}
