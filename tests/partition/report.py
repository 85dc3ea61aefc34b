"""The partition tests' figures in the terminal summary, passed or not: each fault's time
from the heal to the first successful Write and Read through each replica, its calls and
its violations (the tests attach them as the ``partition`` user property)."""

from __future__ import annotations

import json
from typing import Any


def summary_lines(stats: dict[str, list[Any]]) -> list[str]:
    lines = []
    for outcome in ("passed", "failed", "xfailed", "xpassed"):
        for report in stats.get(outcome, []):
            for key, value in getattr(report, "user_properties", []):
                if key != "partition":
                    continue
                figures = json.loads(value)
                recovery = "; ".join(
                    f"{name} write {row['write']} s, read {row['read']} s"
                    for name, row in figures["recovery_s"].items()
                )
                lines.append(
                    f"{figures['fault']} ({outcome}): heal -> first success: {recovery}; "
                    f"writes {figures['writes_acked']}/{figures['writes']} acknowledged, "
                    f"failed {figures['write_errors']}; reads {figures['reads_ok']}/"
                    f"{figures['reads']}; violations {figures['violations']}"
                )
    return lines
