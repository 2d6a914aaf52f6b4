"""Discovery: who is in my ensemble, what each works on, and where; ensembles never mix."""

import subprocess

import pytest

from conftest import ToolFailed, play, wait_until

pytestmark = pytest.mark.anyio


def git_repo(path, origin: str | None = None, branch: str = "main"):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", branch, str(path)], check=True)
    if origin:
        subprocess.run(["git", "-C", str(path), "remote", "add", "origin", origin], check=True)
    return path


def by_name(listing) -> dict:
    return {p["name"]: p for p in listing["players"]}


async def test_players_see_each_other_with_their_description(temporal, ensemble, tmp_path):
    repo = git_repo(tmp_path / "app", branch="feature-x")
    async with play(temporal, ensemble, cwd=str(repo)) as a, play(temporal, ensemble, cwd=str(tmp_path)) as b:
        await a.call("set_name", name="alice")
        await b.call("set_name", name="bob")
        assert await a.call("set_part", part="refactoring the parser") == {"name": "alice", "part": "refactoring the parser"}

        async def part_is_visible():  # visibility follows a memo change within moments, not at once
            listing = await b.call("ensemble")
            return listing if by_name(listing).get("alice", {}).get("part") else None

        listing = await wait_until(part_is_visible)
        assert listing["ensemble"] == ensemble
        players = by_name(listing)
        assert set(players) == {"alice", "bob"}
        alice = players["alice"]
        assert alice["part"] == "refactoring the parser"
        assert alice["directory"] == str(repo) and alice["branch"] == "feature-x"
        assert alice["host"] and alice["conductor"] is False and not alice["you"]
        assert players["bob"]["you"] is True and players["bob"]["branch"] == ""


async def test_ensembles_are_isolated(temporal, ensemble):
    other = ensemble + "b"
    async with play(temporal, ensemble) as a, play(temporal, other) as b:
        await a.call("set_name", name="alice")
        await b.call("set_name", name="bob")
        assert set(by_name(await a.call("ensemble"))) == {"alice"}
        assert set(by_name(await b.call("ensemble"))) == {"bob"}
        with pytest.raises(ToolFailed, match="no player named 'bob'"):
            await a.call("cue", to="bob", message="across ensembles?")


async def test_scope_machine_and_repo(temporal, ensemble, tmp_path):
    url = "https://github.com/acme/widgets.git"
    here = git_repo(tmp_path / "one", origin=url)
    clone = git_repo(tmp_path / "two", origin="https://github.com/acme/widgets")
    elsewhere = git_repo(tmp_path / "three", origin="https://github.com/acme/other.git")
    async with (
        play(temporal, ensemble, cwd=str(here), CLAUDE_TEMPO_HOST="laptop") as a,
        play(temporal, ensemble, cwd=str(clone), CLAUDE_TEMPO_HOST="server") as b,
        play(temporal, ensemble, cwd=str(elsewhere), CLAUDE_TEMPO_HOST="laptop") as c,
    ):
        for p, name in ((a, "a"), (b, "b"), (c, "c")):
            await p.call("set_name", name=name)
        assert set(by_name(await a.call("ensemble"))) == {"a", "b", "c"}
        assert set(by_name(await a.call("ensemble", scope="all"))) == {"a", "b", "c"}
        assert set(by_name(await a.call("ensemble", scope="machine"))) == {"a", "c"}
        # the same remote (with or without .git) is the same repo on any machine
        assert set(by_name(await a.call("ensemble", scope="repo"))) == {"a", "b"}


async def test_repo_scope_outside_a_repo_says_what_to_use(temporal, ensemble, tmp_path):
    async with play(temporal, ensemble, cwd=str(tmp_path)) as a:
        with pytest.raises(ToolFailed, match="not in a git repository.*'machine' or 'all'"):
            await a.call("ensemble", scope="repo")
        with pytest.raises(ToolFailed):
            await a.call("ensemble", scope="galaxy")


async def test_part_is_limited_and_kept_across_a_rename(temporal, ensemble):
    async with play(temporal, ensemble) as a, play(temporal, ensemble) as b:
        await a.call("set_part", part="writing docs")
        await a.call("set_name", name="writer")
        async def renamed():
            return by_name(await b.call("ensemble")).get("writer")

        assert (await wait_until(renamed))["part"] == "writing docs"
        with pytest.raises(ToolFailed, match="limit of 500"):
            await a.call("set_part", part="x" * 501)
