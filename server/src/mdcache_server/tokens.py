"""Bearer tokens and their roles, from ``MDCACHE_TOKENS`` or ``MDCACHE_TOKENS_FILE``.

A ``read`` token may call Read and Stats; a ``write`` token may call everything. No
message here, and no ``repr``, ever shows a token.
"""

from __future__ import annotations

import enum
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what an HTTP/2 header value carries


class Role(enum.Enum):
    READ = "read"
    WRITE = "write"


ROLES = frozenset(r.value for r in Role)


@dataclass(frozen=True, slots=True, repr=False)
class Tokens:
    """The configured tokens; empty (false) when authentication is off."""

    entries: tuple[tuple[bytes, Role], ...] = ()

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Tokens({len(self)} configured)"

    def role_of(self, token: str) -> Role | None:
        """The token's role, or None; every entry is compared, each in constant time."""
        given = token.encode()
        role = None
        for secret, entry_role in self.entries:
            if hmac.compare_digest(given, secret):
                role = entry_role
        return role

    @classmethod
    def of(cls, entries: Iterable[tuple[str, str, str]]) -> Tokens:
        """Tokens from ``(where, token, role)``; a bad entry is a ValueError naming ``where``."""
        parsed: list[tuple[bytes, Role]] = []
        for where, token, role in entries:
            if not TOKEN.fullmatch(token):
                raise ValueError(f"{where}: a token is visible ASCII without spaces")
            if role not in ROLES:
                raise ValueError(f"{where}: role must be read or write")
            secret = token.encode()
            if any(hmac.compare_digest(secret, seen) for seen, _ in parsed):
                raise ValueError(f"{where}: the token is given twice")
            parsed.append((secret, Role(role)))
        return cls(tuple(parsed))


def parse_list(text: str) -> Tokens:
    """``MDCACHE_TOKENS``: ``token:role,token:role`` (empty: none)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    entries = (item.rpartition(":") for item in items)
    return Tokens.of((f"entry {n}", token, role) for n, (token, _, role) in enumerate(entries, 1))


def parse_file(path: Path) -> Tokens:
    """``MDCACHE_TOKENS_FILE``: a line ``token role`` per token; ``#`` starts a comment."""
    entries: list[tuple[str, str, str]] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        words = line.partition("#")[0].split()
        if len(words) not in (0, 2):
            raise ValueError(f"line {n}: expected a token and a role")
        if words:
            entries.append((f"line {n}", words[0], words[1]))
    if not entries:
        raise ValueError("no tokens in the file")
    return Tokens.of(entries)
