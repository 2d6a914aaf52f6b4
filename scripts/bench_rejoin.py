"""Measure how fast a session that was away finds its way back, and print medians.

Usage:
  bench_rejoin.py [--runs=<n>] [--no-netns]

Options:
  --runs=<n>   Runs per figure [default: 5].
  --no-netns   Skip the network case (it needs root and iproute2).

Figures, each from the moment of waking (SIGCONT to the stopped `tempo serve`, or its network
link set up again) to: the player back in the ensemble (listed), and the first cue sent to it
after that delivered (its channel notification). The player was away past its (shortened)
undelivered timeout with a cue waiting, so it had ended and must rejoin. Real dev server, real
`tempo serve` processes (the test harness in tests/, reused).
"""

import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import docopt  # noqa: E402

import tempo  # noqa: E402
from conftest import DevServer, free_port, play, wait_until  # noqa: E402

AWAY = {"CLAUDE_TEMPO_UNDELIVERED_TIMEOUT": "2", "CLAUDE_TEMPO_POLL_WAIT": "3"}


async def one_return(boss, sleeper, sleep, wake) -> tuple[float, float]:
    """Put the sleeper away past its timeout with a cue waiting, wake it; return (back s, first cue s)."""
    await sleep()
    await boss.call("cue", to="sleeper", message="while you were away")
    await wait_until(lambda: listed(boss, False), timeout=60, interval=0.1)
    t0 = time.perf_counter()
    await wake()
    await wait_until(lambda: listed(boss, True), timeout=120, interval=0.01)
    back = time.perf_counter() - t0
    await boss.call("cue", to="sleeper", message="first after waking")
    while (await sleeper.next_cue(timeout=60))["content"] != "first after waking":
        pass
    return back, time.perf_counter() - t0


async def listed(boss, wanted: bool) -> bool:
    """Whether `ensemble`, as the boss calls it, lists the sleeper (as wanted)."""
    return ("sleeper" in [p["name"] for p in (await boss.call("ensemble"))["players"]]) == wanted


async def stopped_process(server: DevServer, runs: int) -> list[tuple[float, float]]:
    client = await tempo.connect(tempo.Config(address=server.address))
    ensemble = "bench-rejoin-stop"
    async with play(server, ensemble, CLAUDE_TEMPO_PLAYER_NAME="boss") as boss, \
            play(server, ensemble, CLAUDE_TEMPO_PLAYER_NAME="sleeper", **AWAY) as sleeper:
        await sleeper.name()
        results = []
        for _ in range(runs):
            pid = (await tempo.find_player(client, ensemble, "sleeper"))[1].pid

            async def sleep() -> None:
                os.kill(pid, signal.SIGSTOP)

            async def wake() -> None:
                os.kill(pid, signal.SIGCONT)

            results.append(await one_return(boss, sleeper, sleep, wake))
        return results


async def cut_link(runs: int) -> list[tuple[float, float]]:
    from test_netns import SUBNET, new_lan, on, start_far_server  # the test's LAN, reused

    with new_lan() as net, tempfile.TemporaryDirectory() as tmp:
        server = start_far_server(net, Path(tmp))
        ensemble = "bench-rejoin-link"
        async with play(server, ensemble, command=on(net, "desk", f"{SUBNET}.2"), CLAUDE_TEMPO_PLAYER_NAME="boss") as boss, \
                play(server, ensemble, command=on(net, "laptop", f"{SUBNET}.3"), CLAUDE_TEMPO_PLAYER_NAME="sleeper", **AWAY) as sleeper:
            await sleeper.name()
            results = []
            for _ in range(runs):
                async def sleep() -> None:
                    net.cut("laptop")

                async def wake() -> None:
                    net.mend("laptop")

                results.append(await one_return(boss, sleeper, sleep, wake))
            return results


def summary(label: str, results: list[tuple[float, float]]) -> None:
    back = statistics.median(r[0] for r in results)
    first = statistics.median(r[1] for r in results)
    print(f"{label:<34} back in ensemble {back:6.2f} s   first cue {first:6.2f} s   (medians of {len(results)})", flush=True)


def main() -> int:
    args = docopt.docopt(__doc__)
    runs = int(args["--runs"])
    with tempfile.TemporaryDirectory() as tmp:
        argv = tempo._dev_server_argv(tempo.temporal_binary(), "127.0.0.1", port := free_port(), f"{tmp}/t.db",
                                     http_port=free_port(), metrics_port=free_port())
        server = DevServer(address=f"127.0.0.1:{port}", process=None, db=f"{tmp}/t.db", argv=argv)
        server.start()
        try:
            summary("wake after SIGSTOP (SIGCONT)", asyncio.run(stopped_process(server, runs)))
        finally:
            server.stop()
    if not args["--no-netns"]:
        summary("link up after link down (netns)", asyncio.run(cut_link(runs)))
    sys.stdout.flush()
    os._exit(0)  # see NOTES.md: crash at exit


if __name__ == "__main__":
    main()
