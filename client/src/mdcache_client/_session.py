"""Session tokens: read-your-writes through any replica (``WriteResponse.session_token``).

A Write's (or Purge's) answer carries a token; the client keeps the latest of its session
and sends it with every Read as the call metadata ``mdcache-session-token``, so a replica
that has not yet seen that Write through the store's change feed answers from the store.
A token is ``1.<acknowledged at, ms>.<replica>``; of two, the later is kept, and one whose
session wrote through several replicas names none (``*``).
"""

from __future__ import annotations

HEADER = "mdcache-session-token"


def _parsed(token: str) -> tuple[int, str] | None:
    version, _, rest = token.partition(".")
    at, _, replica = rest.partition(".")
    if version != "1" or not at.isdigit() or not replica:
        return None
    return int(at), replica


def merged(kept: str, new: str) -> str:
    """The session's token after a change answered with ``new`` (``kept``: before)."""
    old, fresh = _parsed(kept), _parsed(new)
    if fresh is None:
        return kept
    if old is None:
        return new
    at = max(old[0], fresh[0])
    replica = old[1] if old[1] == fresh[1] else "*"
    return f"1.{at}.{replica}"
