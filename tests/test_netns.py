"""Across real machines: the dev server and each player in a network namespace of its own.

The test builds a small LAN (`ip netns`, veth pairs on a bridge in a hub namespace: nothing on
the host's own network changes), cuts one player's link (link down) past the shortened
undelivered timeout, or the server's link mid-traffic, and restores it. Every cue must be
accounted for exactly once: delivered, or handed over and told. Needs root (CI runs as root).
"""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import tempo
from conftest import ROOT, DevServer, ToolFailed, play, wait_until

pytestmark = pytest.mark.anyio

SUBNET = "10.77.0"  # inside the test's own namespaces only
SERVER_IP = f"{SUBNET}.1"


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


@dataclass
class Lan:
    """Namespaces on one bridge: `host(name)` adds a machine, `cut(name)`/`mend(name)` its cable."""

    tag: str
    hosts: dict[str, str] = field(default_factory=dict)  # name -> namespace
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"{self.tag}-hub"

    def host(self, name: str, address: str) -> str:
        ns, n = f"{self.tag}-{name}", len(self.hosts)
        inside, outside = f"{self.tag[-4:]}v{n}", f"{self.tag[-4:]}h{n}"  # interface names: 15 chars at most
        ip("netns", "add", ns)
        self.hosts[name] = ns
        ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", inside, "netns", ns, "type", "veth", "peer", "name", outside, "netns", self.hub)
        ip("-n", self.hub, "link", "set", outside, "master", "br0")
        ip("-n", self.hub, "link", "set", outside, "up")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
        ip("-n", ns, "link", "set", inside, "up")
        return ns

    def link(self, name: str) -> str:
        return f"{self.tag[-4:]}v{list(self.hosts).index(name)}"

    def cut(self, name: str) -> None:
        ip("-n", self.hosts[name], "link", "set", self.link(name), "down")

    def mend(self, name: str) -> None:
        ip("-n", self.hosts[name], "link", "set", self.link(name), "up")

    def command(self, name: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[name], *argv]


@pytest.fixture
def lan():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.fail("the network tests need root and iproute2 (apt-get install iproute2), as in CI")
    with new_lan() as net:
        yield net


@contextlib.contextmanager
def new_lan():
    """A LAN of namespaces, removed at the end with everything still running in it."""
    tag = f"t{uuid.uuid4().hex[:6]}"
    net = Lan(tag=tag)
    try:
        ip("netns", "add", net.hub)
        ip("-n", net.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", net.hub, "link", "set", "br0", "up")
        yield net
    finally:
        for process in net.processes:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(15)
            if process.poll() is None:
                process.kill()
                process.wait(5)
        for ns in [*net.hosts.values(), net.hub]:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:  # anything a test started there and left behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def far_server(lan, tmp_path) -> DevServer:
    return start_far_server(lan, tmp_path)


def start_far_server(lan: Lan, tmp_path: Path) -> DevServer:
    """The Temporal dev server on a machine of its own (namespace `server`)."""
    lan.host("server", SERVER_IP)
    # All addresses of its own namespace: the dev server's services also dial each other on loopback.
    argv = lan.command("server", *tempo._dev_server_argv(tempo.temporal_binary(), "0.0.0.0", 7233, str(tmp_path / "t.db"),
                                                          http_port=7243, metrics_port=7253))
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lan.processes.append(process)
    server = DevServer(address=f"{SERVER_IP}:7233", process=process, db=str(tmp_path / "t.db"), argv=argv)
    probe = f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]; import conftest; conftest.wait_for_server({server.address!r}); import os; os._exit(0)"  # see NOTES.md, crash at exit
    subprocess.run(lan.command("server", sys.executable, "-c", probe), check=True, timeout=90)
    return server


def on(lan: Lan, name: str, address: str) -> tuple[str, list[str]]:
    """The `tempo serve` command of a player on machine `name` (created here)."""
    lan.host(name, address)
    argv = lan.command(name, sys.executable, str(ROOT / "tempo.py"), "serve")
    return argv[0], argv[1:]


async def collect(player, kinds: tuple[str, ...], quiet: float = 2.0) -> list[dict]:
    got = []
    with contextlib.suppress(asyncio.TimeoutError):
        while True:
            cue = await player.next_cue(timeout=quiet)
            if cue["meta"]["kind"] in kinds:
                got.append(cue)
    return got


async def names(player) -> list[str]:
    return sorted(p["name"] for p in (await player.call("ensemble"))["players"])


async def test_a_player_cut_off_past_the_timeout_rejoins_and_every_cue_is_counted_once(lan, far_server, ensemble):
    away = {"CLAUDE_TEMPO_UNDELIVERED_TIMEOUT": "3", "CLAUDE_TEMPO_POLL_WAIT": "3"}
    async with play(far_server, ensemble, command=on(lan, "podium", f"{SUBNET}.2"), CLAUDE_TEMPO_CONDUCTOR="true") as conductor, \
            play(far_server, ensemble, command=on(lan, "desk", f"{SUBNET}.3"), CLAUDE_TEMPO_PLAYER_NAME="boss") as boss, \
            play(far_server, ensemble, command=on(lan, "laptop", f"{SUBNET}.4"), CLAUDE_TEMPO_PLAYER_NAME="roamer", **away) as roamer:
        assert (await conductor.name(), await roamer.name()) == ("conductor", "roamer")
        assert await names(boss) == ["boss", "conductor", "roamer"]
        await boss.call("cue", to="roamer", message="before")
        assert (await roamer.next_cue())["content"] == "before"

        lan.cut("laptop")
        sent = ["while away 1", "while away 2"]
        for text in sent:
            await boss.call("cue", to="roamer", message=text)
        handed = []
        while len(handed) < 2:
            cue = await conductor.next_cue(timeout=60)
            if cue["meta"]["kind"] == "undelivered":
                handed.append(cue["content"])
        await wait_until(lambda: gone(boss, "roamer"), timeout=30)
        lan.mend("laptop")

        notice = None
        while notice is None:
            cue = await roamer.next_cue(timeout=90)
            assert cue["meta"]["kind"] != "cue", f"a handed-over cue was delivered again: {cue}"
            if cue["meta"]["kind"] == "notice":
                notice = cue["content"]
        assert "You are back as roamer" in notice
        for text in sent:
            assert f"- from boss, given to the conductor: {text}" in notice
        await wait_until(lambda: back(boss, "roamer"), timeout=30)
        await boss.call("cue", to="roamer", message="after")
        assert (await roamer.next_cue(timeout=30))["content"] == "after"
        await roamer.call("cue", to="boss", message="thanks")
        assert (await boss.next_cue(timeout=30))["content"] == "thanks"
        assert sorted(handed) == sent  # each handed over once ...
        assert [c["content"] for c in await collect(conductor, ("undelivered",))] == []
        assert [c for c in await collect(roamer, ("cue",)) if c["content"] in sent] == []  # ... and never delivered


async def gone(player, name: str) -> bool:
    return name not in await names(player)


async def back(player, name: str) -> bool:
    return name in await names(player)


async def test_the_servers_link_cut_mid_traffic_loses_and_duplicates_nothing(lan, far_server, ensemble):
    async with play(far_server, ensemble, command=on(lan, "one", f"{SUBNET}.2"), CLAUDE_TEMPO_PLAYER_NAME="alpha") as alpha, \
            play(far_server, ensemble, command=on(lan, "two", f"{SUBNET}.3"), CLAUDE_TEMPO_PLAYER_NAME="beta") as beta:
        assert (await alpha.name(), await beta.name()) == ("alpha", "beta")
        sent, refused = [], []

        async def traffic() -> None:
            for i in range(30):
                text = f"cue {i}"
                try:
                    await alpha.call("cue", to="beta", message=text)
                    sent.append(text)
                except ToolFailed:
                    refused.append(text)  # the sender was told: it is not lost
                await asyncio.sleep(0.2)

        flowing = asyncio.create_task(traffic())
        await asyncio.sleep(1)
        lan.cut("server")
        await asyncio.sleep(4)
        lan.mend("server")
        await flowing

        got = []
        while len(got) < len(sent):
            cue = await beta.next_cue(timeout=90)
            if cue["meta"]["kind"] == "cue":
                got.append(cue["content"])
        got += [c["content"] for c in await collect(beta, ("cue",))]
        assert sorted(got) == sorted(sent) and len(sent) + len(refused) == 30
        await beta.call("cue", to="alpha", message="back online")
        assert (await alpha.next_cue(timeout=30))["content"] == "back online"
