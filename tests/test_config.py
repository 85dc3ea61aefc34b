"""Configuration: flags over environment over defaults, validated once; the docs list it all."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from mdcache_server.app import compose
from mdcache_server.config import GROUPS, SETTINGS, Config, add_arguments
from mdcache_server.errors import ConfigError
from mdcache_server.store import open_store

PAGE = (Path(__file__).parent.parent / "docs" / "operations" / "configuration.md").read_text()


def test_defaults() -> None:
    config = Config.load({}, {})
    assert config.listen == "[::]:50051"
    assert config.store_url == "sqlite:///mdcache-data/mdcache.sqlite3"
    assert (config.workers, config.max_pending, config.grace_seconds) == (0, 256, 10.0)
    assert compose(config, open_store(config.store_url)).pool.workers == 2  # auto: the store's
    tdengine = Config.load({"store_url": "taosws://root:taosdata@td:6041/market"}, {})
    assert compose(tdengine, open_store(tdengine.store_url)).pool.workers == 8
    assert config.limits.max_read_records == 100_000


def test_flag_wins_over_environment_which_wins_over_default() -> None:
    env = {"MDCACHE_WORKERS": "8", "MDCACHE_LISTEN": "127.0.0.1:6000", "MDCACHE_DATA_DIR": "/d"}
    config = Config.load({"workers": "2", "listen": None}, env)
    assert (config.workers, config.listen) == (2, "127.0.0.1:6000")
    assert config.store_url == "sqlite:////d/mdcache.sqlite3"


def test_limits_come_from_settings() -> None:
    config = Config.load({"max_read_records": "10"}, {"MDCACHE_MAX_RECORDS_PER_WRITE": "20"})
    assert (config.limits.max_read_records, config.limits.max_records_per_write) == (10, 20)


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"workers": "-1"}, {}, "--workers='-1': must be a positive integer"),
        ({}, {"MDCACHE_GRACE_SECONDS": "soon"}, "MDCACHE_GRACE_SECONDS='soon'"),
        ({}, {"MDCACHE_LOG_FORMAT": "xml"}, "must be one of auto, json, console"),
    ],
)
def test_bad_values_name_their_source(
    flags: dict[str, str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.load(flags, env)


def test_docs_document_every_setting_with_its_default() -> None:
    for s in SETTINGS:
        rows = [line for line in PAGE.splitlines() if line.startswith("| `--")]
        row = next((line for line in rows if f"`{s.env}`" in line), None)
        assert row is not None, f"{s.env} is missing from the docs' configuration tables"
        assert f"`{s.flag}`" in row
        if s.default:
            assert f"`{s.default}`" in row, f"the docs give another default for {s.env}"


def test_every_setting_is_a_config_field_declared_once() -> None:
    fields = [f.name for f in dataclasses.fields(Config)]
    assert fields == [s.name for s in SETTINGS] + ["limits"]
    for attribute in ("flag", "env"):
        values = [getattr(s, attribute) for s in SETTINGS]
        assert len(set(values)) == len(values), f"a {attribute} is used twice"


def test_serve_help_shows_the_settings_in_their_groups() -> None:
    serve = argparse.ArgumentParser(prog="serve")
    add_arguments(serve)
    groups = {g.title: g for g in serve._action_groups}
    for s in SETTINGS:
        [action] = [a for a in groups[s.group[0]]._group_actions if a.dest == s.name]
        assert action.option_strings == [s.flag]
    assert [title for title, _ in GROUPS] == list(groups)[2:]  # after argparse's own two
