"""The client's public surface: one API and the same names in both flavours, a tested __all__."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import grpc

import mdcache_client
from mdcache_client import AsyncClient, Client, MdcacheError
from mdcache_client._errors import ERRORS


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and (not name.startswith("_") or name == "__init__")
    }


def test_both_flavours_have_the_same_methods_and_parameters() -> None:
    blocking, asyncio = public_methods(Client), public_methods(AsyncClient)
    assert set(blocking) == set(asyncio)
    for name, signature in asyncio.items():
        params = [(p.name, p.kind, p.default) for p in signature.parameters.values()]
        assert params == [
            (p.name, p.kind, p.default) for p in blocking[name].parameters.values()
        ], name
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)) == (name != "__init__")
        assert not inspect.iscoroutinefunction(getattr(Client, name))
    assert {"write", "read", "read_many", "get_or_load", "purge", "stats"} <= set(asyncio)


def own_methods(cls: type) -> dict[str, list[str]]:
    """The methods a class defines, by name (asyncio's dunders as their blocking twins')."""
    blocking = {"__aenter__": "__enter__", "__aexit__": "__exit__", "__aiter__": "__iter__"}
    return {
        blocking.get(name, name): list(inspect.signature(getattr(cls, name)).parameters)
        for name, member in vars(cls).items()
        if callable(member) and not isinstance(member, type)
    }


def test_every_generated_twin_has_the_methods_of_its_source() -> None:
    """Each *_aio.py has its blocking *_sync.py (scripts/gen-sync-client; make check fails
    when one is stale): the same classes and methods, and not a coroutine among them."""
    package = Path(mdcache_client.__file__).parent
    sources = sorted(path.stem for path in package.glob("*_aio.py"))
    assert sources == ["_aio", "_cacheaside_aio", "_flight_aio", "_live_aio"]
    for stem in sources:
        aio = importlib.import_module(f"mdcache_client.{stem}")
        sync = importlib.import_module(f"mdcache_client.{stem.removesuffix('_aio')}_sync")
        classes = [
            c for c in vars(aio).values() if isinstance(c, type) and c.__module__ == aio.__name__
        ]
        assert classes, stem
        for cls in classes:
            twin = getattr(sync, cls.__name__.removeprefix("Async"))
            assert own_methods(cls) == own_methods(twin), cls.__name__
            for name in own_methods(twin):
                method = getattr(twin, name)
                assert not inspect.iscoroutinefunction(method), f"{twin.__name__}.{name}"
                assert not inspect.isasyncgenfunction(method), f"{twin.__name__}.{name}"


def test_all_names_the_public_api() -> None:
    assert mdcache_client.__all__ == sorted(mdcache_client.__all__)
    for name in mdcache_client.__all__:
        assert getattr(mdcache_client, name) is not None
    public = {n for n in vars(mdcache_client) if not n.startswith("_")}
    assert public == set(mdcache_client.__all__)


def test_one_table_maps_status_codes_to_exceptions() -> None:
    assert ERRORS[grpc.StatusCode.UNAUTHENTICATED] is mdcache_client.UnauthenticatedError
    assert ERRORS[grpc.StatusCode.PERMISSION_DENIED] is mdcache_client.PermissionDeniedError
    for code, cls in ERRORS.items():
        assert issubclass(cls, MdcacheError)
        assert cls.__name__ in mdcache_client.__all__
        error = cls(code, "details")
        assert (error.code, error.details, str(error)) == (code, "details", f"{code.name}: details")


def test_change_is_a_deprecated_alias_of_streamed_record() -> None:
    """``Change`` was the name of what a subscription gives; the server has two classes
    of that name, so the client's says what it is. The old name stays, the same class."""
    assert mdcache_client.Change is mdcache_client.StreamedRecord
    assert {"Change", "StreamedRecord"} <= set(mdcache_client.__all__)
