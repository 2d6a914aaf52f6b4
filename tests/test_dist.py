"""The shipped artifacts: build the shiv zipapp and the one-file binary, then run them for real.

`scripts/build` writes dist/tempo.pyz and dist/tempo; each is run the way a user runs it (the
zipapp by the base interpreter, outside any virtualenv, with no PYTHONPATH), as a CLI and as the
MCP server two Claude Code sessions start. Marked `dist` (about two minutes, most of it the
build): `pytest -m "not dist"` skips it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tempo
from conftest import ROOT, play

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
    assert "Usage:" in helped.stdout and "tempo serve" in helped.stdout


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


def test_zipapp_finds_its_embedded_dev_server_and_itself(artifacts, tmp_path):
    """Inside the zipapp, temporal_binary() is the embedded one and artifact_argv() the .pyz."""
    exe, args = artifacts["zipapp"]
    probe = tmp_path / "probe.py"
    probe.write_text("import sys, tempo; sys.argv[0] = sys.argv[1]\n"
                     "print(tempo.temporal_binary()); print(tempo.artifact_argv())\n")
    # SHIV_INTERPRETER runs a script inside the zipapp's environment instead of its entry point.
    result = run(exe, [*args, str(probe), args[0]], SHIV_INTERPRETER="1", CLAUDE_TEMPO_TEMPORAL="")
    assert result.returncode == 0, result.stderr
    binary, argv = result.stdout.splitlines()
    assert Path(binary).is_relative_to(SHIV_ROOT), binary
    assert subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.startswith("temporal version")
    assert argv == repr([os.path.abspath(exe), str(DIST / "tempo.pyz")])


def test_help_and_version_import_neither_temporalio_nor_mcp():
    for flag in ("--help", "--version"):
        result = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "tempo.py"), flag],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0
        imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
        assert not {m for m in imported if m.split(".")[0] in ("temporalio", "mcp", "pydantic", "tempo_workflows")}
