"""``python -m bench.profile``: where the server's time goes, sampled by py-spy under load.

For each scenario a fresh load runs against ``mdcache serve`` while ``py-spy record``
samples the server process: by default only the thread holding the GIL, the one resource
every Python thread of the server shares (``--all-threads``: every busy thread). The
collapsed stacks go to ``<out>/<scenario>.txt`` (for flamegraph.pl or speedscope) and a
summary of the top frames, by the share of samples they appear in (inclusive) and are the
leaf of (self), to ``<out>/summary.md``.

py-spy comes from PyPI (``pip install py-spy``; ``make bench`` installs it) and needs to
ptrace the server: root, or ``kernel.yama.ptrace_scope=0``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import data, procs, wire, writes
from bench.data import HOT_SERIES, YEAR
from bench.load import closed_loop, summarize

OUT = Path(__file__).resolve().parent / "results" / "profile"
TOP = 25


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


def _frame(name: str) -> str:
    return name.strip()


def summarize_stacks(
    path: Path, top: int = TOP
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """Total samples; the top frames by inclusive share and by self share (percent)."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        for f in set(frames):
            inclusive[f] += count
        leaf[frames[-1]] += count
    pct = 100 / total if total else 0.0
    return (
        total,
        [(f, n * pct) for f, n in inclusive.most_common(top)],
        [(f, n * pct) for f, n in leaf.most_common(top)],
    )


async def _scenario(
    name: str,
    server: procs.Process,
    load: Callable[[], Awaitable[str]],
    seconds: float,
    out: Path,
    native: bool,
    gil: bool,
) -> tuple[str, str]:
    raw = out / f"{name}.txt"
    argv = [
        _py_spy(),
        "record",
        "--pid",
        str(server.pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "250",
        "--format",
        "raw",
        "--function",
        "--output",
        str(raw),
        *(["--native"] if native else ["--nonblocking"]),  # native stacks need a pause
        *(["--gil"] if gil else []),
    ]
    spy = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    figure = await load()
    _, err = await spy.communicate()
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')}")
    return name, figure


async def run(
    out: Path, seconds: float, native: bool, gil: bool, say: Callable[[str], None]
) -> None:
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before any load)
    bars = data.a_shares()
    few = {s: bars[s] for s in sorted(bars)[:10]} | {HOT_SERIES: bars[HOT_SERIES]}
    first, last = data.year_window(bars[HOT_SERIES])
    read_year = wire.window(HOT_SERIES, first, last, YEAR)
    read_latest = wire.latest(HOT_SERIES)
    figures: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="mdcache-profile-") as tmp:
        workdir = Path(tmp)
        hot = procs.mdcache("hot", workdir)
        cold = procs.mdcache("cold", workdir, "--hot-tier-bytes", "0")
        try:
            chans = {"hot": wire.channel(hot.target), "cold": wire.channel(cold.target)}
            for name in chans:
                await writes.ingest(
                    writes.grpc_sender(wire.raw(chans[name], wire.WRITE)),
                    {HOT_SERIES: bars[HOT_SERIES]},
                    1,
                )

            def reads(server: str, request: bytes, conc: int) -> Callable[[], Awaitable[str]]:
                call = wire.raw(chans[server], wire.READ)

                async def go() -> str:
                    samples = await closed_loop(lambda _n: call(request), conc, seconds, 0.3)
                    m = summarize([samples])
                    return f"{m.calls_per_s:.0f} calls/s, p50 {m.p50_ms:.2f} ms"

                return go

            def ingest(server: str, in_flight: int) -> Callable[[], Awaitable[str]]:
                tag = f"{server}{in_flight}"

                async def go() -> str:
                    send = writes.grpc_sender(wire.raw(chans[server], wire.WRITE))
                    rows = elapsed = 0.0
                    passes = 0
                    while elapsed < seconds:  # fresh series each pass: inserts, not updates
                        passes += 1
                        fresh = {
                            s._replace(symbol=f"{s.symbol}-{tag}-{passes}"): r
                            for s, r in few.items()
                        }
                        r = await writes.ingest(send, fresh, in_flight)
                        rows += r["rows"]
                        elapsed += r["seconds"]
                    return f"{rows / elapsed:.0f} rows/s"

                return go

            def single(server: str, conc: int) -> Callable[[], Awaitable[str]]:
                async def go() -> str:
                    call = wire.raw(chans[server], wire.WRITE)
                    payload = bars[HOT_SERIES][-1].payload
                    r = await writes.single_writes(call, payload, conc, seconds, 0.3)
                    return f"{r['calls_per_s']:.0f} calls/s, p50 {r['p50_ms']:.2f} ms"

                return go

            await wire.raw(chans["hot"], wire.READ)(read_year)  # held from here on
            scenarios = [
                ("hot-read-250-c8", hot, reads("hot", read_year, 8)),
                ("hot-read-1-c8", hot, reads("hot", read_latest, 8)),
                ("cold-read-250-c8", cold, reads("cold", read_year, 8)),
                ("cold-read-1-c8", cold, reads("cold", read_latest, 8)),
                ("ingest-1-in-flight", cold, ingest("cold", 1)),
                ("ingest-4-in-flight", hot, ingest("hot", 4)),
                ("single-write-c8", cold, single("cold", 8)),
            ]
            for name, server, load in scenarios:
                figures.append(await _scenario(name, server, load, seconds, out, native, gil))
                say(f"{name}: {figures[-1][1]}")
            for chan in chans.values():
                await chan.close()
        finally:
            hot.stop()
            cold.stop()
    lines = [
        "# py-spy profiles of mdcache serve",
        "",
        f"Server code: {procs.server_code()}.",
        "",
        f"Sampled at 250 Hz for about {seconds:g} s each, "
        + ("only samples of the thread holding the GIL" if gil else "every thread, idle left out")
        + (", native frames included" if native else "")
        + ". Inclusive: share of samples in which the frame appears; self: share of samples "
        "in which it is the leaf. Collapsed stacks beside this file.",
        "",
    ]
    for name, figure in figures:
        total, inclusive, leaf = summarize_stacks(out / f"{name}.txt")
        lines += [
            f"## {name} ({figure}; {total} samples)",
            "",
            "| inclusive % | frame |",
            "|---:|---|",
        ]
        lines += [f"| {p:.1f} | `{f}` |" for f, p in inclusive]
        lines += ["", "| self % | frame |", "|---:|---|"]
        lines += [f"| {p:.1f} | `{f}` |" for f, p in leaf]
        lines.append("")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    say(f"wrote {out / 'summary.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--native", action="store_true", help="sample C frames too")
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="sample every busy thread, not only the one holding the GIL",
    )
    args = parser.parse_args()

    def say(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    asyncio.run(run(args.out, args.seconds, args.native, not args.all_threads, say))


if __name__ == "__main__":
    main()
