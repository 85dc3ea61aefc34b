"""What the tests (``tests/``) and the benchmark (``bench/``) both need to run mdcache for real.

- ``ports``: a free loopback port, for processes that cannot report their own;
- ``poll``: waiting for a condition, blocking or on the event loop;
- ``process``: a child process whose standard error is a log of JSON events, waited on;
- ``taosd``: a ``taosd`` of the TDengine bundle, and three of them as one cluster.

Nothing here is shipped: it is imported from the checkout (the repository's root is on
``sys.path`` under pytest and under ``python -m bench``).
"""
