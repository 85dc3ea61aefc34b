"""The benchmark of mdcache: ``python -m bench`` (``make bench``), ``--quick`` for a smoke run.

Cases (``bench.cases``, each a module with a ``CASE``: its run, typed result, targets and
tables; ``bench.case`` says what a case declares): Reads hot and cold against a bare
grpc.aio floor and Redis, and writes (``service``), the pieces of a call (``micro``),
latency against rows stored (``growth``), a replayed day of cache-aside use (``day``),
resampled Reads (``resample``), and the first three again on TDengine (``tdengine``).
``report`` renders a results file through the cases; ``profile`` samples the server with
py-spy; ``cluster``, ``live`` and ``processes`` are runs of their own, on demand. The
processes, ports and ``taosd`` come from ``harness``, shared with the tests.
"""
