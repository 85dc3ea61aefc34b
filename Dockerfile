# mdcache: the gRPC market-data cache service.
#
#   docker build -t mdcache .        (or: docker compose up, with TDengine; see docker-compose.yml)
#
# The image installs both distributions from this repository, ./client (mdcache-client, the
# contract) and . (mdcache, the server, which requires mdcache-client==0.1.0), with both TDengine
# extras: `tdengine` (taospy, the native connector on port 6030: the path CI runs against a real
# server) and `taosws` (taos-ws-py over taosAdapter's WebSocket, port 6041, the alternative).
# Every other package comes from the lock, requirements/server.txt (exported from uv.lock by
# scripts/lock), each pinned with its hashes (`--require-hashes`); the two local packages are
# built by hatchling from requirements/build.txt, hashed too, without build isolation.
# taospy needs TDengine's client library, which pip cannot install: it is copied from the
# official TDengine image of TDENGINE_VERSION, which must match the server's version (the
# compose file runs that image): 3.2.2.2, the version CI tests. Without MDCACHE_STORE_URL
# the server uses SQLite under MDCACHE_DATA_DIR.
#
# Both stages start from one pinned base, so the virtual environment built in `build` runs
# unchanged in the final stage, which has no build inputs and no pip cache. The tag pins Python's
# patch release and Debian 12; add @sha256:<digest> to freeze the Debian packages too.

ARG TDENGINE_VERSION=3.2.2.2

FROM tdengine/tdengine:${TDENGINE_VERSION} AS tdengine

FROM python:3.11.17-slim-bookworm AS base


FROM base AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY requirements/ requirements/
RUN python -m venv /opt/mdcache \
 && /opt/mdcache/bin/pip install --require-hashes --no-deps -r requirements/server.txt \
 && python -m pip install --require-hashes --no-deps -r requirements/build.txt

COPY client/ client/
COPY pyproject.toml README.md ./
COPY server/ server/

# Wheels of the two local projects, built with the locked hatchling, installed without their
# dependencies (already in from the lock); `pip check` proves nothing is missing.
RUN python -m pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels ./client . \
 && /opt/mdcache/bin/pip install --no-deps /tmp/wheels/*.whl \
 && /opt/mdcache/bin/pip check


FROM base

LABEL org.opencontainers.image.title="mdcache" \
      org.opencontainers.image.description="Market-data cache service: gRPC in front of SQLite or TDengine" \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --system --gid 10001 mdcache \
 && useradd --system --uid 10001 --gid mdcache --no-create-home \
      --home-dir /var/lib/mdcache --shell /usr/sbin/nologin mdcache \
 && install -d -o mdcache -g mdcache -m 0750 /var/lib/mdcache

COPY --from=build /opt/mdcache /opt/mdcache
# TDengine's client driver (libtaos.so and what it loads), named as the loader looks for it.
COPY --from=tdengine /usr/local/taos/driver/ /opt/taos/driver/
RUN for lib in /opt/taos/driver/lib*.so.*; do \
      ln -sf "$lib" "${lib%%.so.*}.so"; ln -sf "$lib" "${lib%%.so.*}.so.1"; \
    done

ENV PATH=/opt/mdcache/bin:$PATH \
    LD_LIBRARY_PATH=/opt/taos/driver \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MDCACHE_DATA_DIR=/var/lib/mdcache \
    MDCACHE_LISTEN=[::]:50051

WORKDIR /var/lib/mdcache
VOLUME ["/var/lib/mdcache"]
# Numeric, so that runtimes which check for a non-root user (runAsNonRoot) can tell.
USER 10001:10001
EXPOSE 50051

# `mdcache health` asks the standard gRPC health service (grpc.health.v1) and exits 0 only when
# it answers SERVING; the server reports NOT_SERVING while its store probe fails. The start
# period covers the server's own start-up retries (MDCACHE_STARTUP_TIMEOUT_SECONDS, 60 by default).
# With TLS on the server, set MDCACHE_TLS_CA to the CA (or the self-signed certificate) as well.
HEALTHCHECK --interval=15s --timeout=5s --start-period=75s --retries=3 \
    CMD ["mdcache", "health", "--target", "127.0.0.1:50051", "--timeout", "3"]

ENTRYPOINT ["mdcache"]
CMD ["serve"]
