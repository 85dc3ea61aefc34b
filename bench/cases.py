"""The cases of ``python -m bench``, in the order they run and are reported.

A new case is a module of ``bench/`` with a ``CASE`` (see ``bench.case``) and its line here.
"""

from __future__ import annotations

from typing import Any

from bench import day, freshness, growth, micro, resample, service, soak, tdengine
from bench.case import Case

CASES: tuple[Case[Any], ...] = (
    service.CASE,
    micro.CASE,
    growth.CASE,
    day.CASE,
    resample.CASE,
    soak.CASE,
    freshness.CASE,
    tdengine.CASE,  # the parts above again on TDengine: last
)
PARTS = tuple(case.name for case in CASES)
