"""The benchmark of mdcache: ``python -m bench`` (``make bench``), ``--quick`` for a smoke run.

Parts: Reads hot and cold against a bare grpc.aio floor and Redis (``service``, ``reads``),
writes (``writes``), the store alone (``storefloor``), the pieces of a call (``micro``),
latency against rows stored (``growth``), a replayed day of cache-aside use (``day``);
``report`` writes the results and ``profile`` samples the server with py-spy.
"""
