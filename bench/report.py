"""The report of a results file: its targets judged, and each case's tables and notes.

It knows no case: each case found in the results renders its own section
(``bench.cases``), in the order the cases run.
"""

from __future__ import annotations

from bench.case import Results, Target
from bench.cases import CASES
from bench.table import fmt, verdict


def targets(results: Results) -> list[Target]:
    """Each target of every case in ``results``, with what was measured and whether it holds."""
    out: list[Target] = []
    for case in CASES:
        result = case.load(results)
        if result is not None:
            out.extend(case.targets(result, results))
    return out


def notes(results: Results) -> list[str]:
    """Why a missed target is missed, from the run's own figures, case by case."""
    out: list[str] = []
    for case in CASES:
        result = case.load(results)
        if result is not None:
            out.extend(case.notes(result, results))
    return out


def markdown(results: Results) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"# mdcache benchmark, {results['date']}")
    add("")
    add(f"Machine: {results['machine']}. Mode: {results['mode']}. Command: `{results['command']}`.")
    add("")
    add(
        f"Server code measured: {results.get('code', 'unknown')}. Load average (1 min) "
        f"{results['load_average_at_start'][0]:.2f} at the start, "
        f"{results['load_average_at_end'][0]:.2f} at the end (2 cores: at the start, above 1 "
        f"means other work was running; at the end it counts the benchmark's own "
        f"processes); {results['seconds']:.0f} s in all."
    )
    add("")
    add("Every figure of a table comes from one run on one machine; the servers of a")
    add("read cell were measured back to back (rotating order each round), so read the ratios")
    add("rather than the absolute figures on a shared machine. Server CPU ms/call is the")
    add("server process's CPU time over the measured span divided by the calls: the steadiest")
    add("figure on a noisy machine.")
    add("")
    add("## Targets")
    add("")
    add("Reads: the ratio of all rounds pooled, and of each round alone (the servers of a")
    add("cell measured back to back), which shows how far the machine moves a ratio.")
    add("")
    add("| target | measured | each round | verdict |")
    add("|---|---:|---|---|")
    for t in results["targets"]:
        measured = t["measured"]
        shown = (
            fmt(measured, 3) if isinstance(measured, float) and measured < 100 else fmt(measured)
        )
        rounds = ", ".join(f"{r:.2f}" for r in t.get("rounds", [])) or "-"
        add(f"| {t['target']} | {shown} | {rounds} | {verdict(t['ok'])} |")
    add("")
    for case in CASES:
        result = case.load(results)
        if result is not None:
            lines.extend(case.tables(result, results))
    said = results.get("notes") or []
    if said:
        add("## Notes")
        add("")
        for note in said:
            add(f"- {note}")
        add("")
    return "\n".join(lines)
