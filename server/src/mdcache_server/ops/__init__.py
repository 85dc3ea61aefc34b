"""The operator's subcommands of ``mdcache``: verify, monitor, load, stats, purge.

Each talks to a server through the client package (``mdcache_client``), as any other
user of the cache does; ``verify`` also opens the store itself.
"""
