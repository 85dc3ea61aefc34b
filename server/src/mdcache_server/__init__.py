"""mdcache server: a gRPC market-data cache in front of SQLite or TDengine.

A call flows one way::

    service/ (validate, map errors) -> cache/ (policy, statistics)
        -> pool.py (worker threads) -> store/ (SQLite or TDengine)
"""

__version__ = "0.1.0"
