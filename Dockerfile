# Dockerfile: ferry on Debian 12, as a drop-in for the Go replicator's
# image. Every variable the Go service reads works with `docker run -e`
# (etc/ferry.ini reads them), the HTTP probes answer on HEALTH_PORT (8090).
#
#   docker build -t ferry .
#   docker run -e SCHEMATIC_API_KEY=sch_... -e REDIS_ADDR=redis:6379 \
#       -p 8090:8090 ferry
#
# BASE is debian:bookworm-slim; where no registry is reachable, make
# test-image builds a local Debian 12 base with debootstrap
# (tests/image/base.sh) and passes it here. Own configuration: mount it
# over /etc/ferry/ferry.ini, or put an overlay that includes it there.
ARG BASE=debian:bookworm-slim

# ---- build: the -dev packages, make, make install into /out -----------------
FROM ${BASE} AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config libwebsockets-dev libhiredis-dev \
        libinih-dev libjansson-dev libcurl4-openssl-dev libssl-dev \
        libsystemd-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# PREFIX=/usr puts the configuration in /etc/ferry (see the Makefile's
# install target); the unit file is of no use in a container.
RUN make -j"$(nproc)" BUILD=/tmp/build all \
    && make BUILD=/tmp/build PREFIX=/usr DESTDIR=/out install \
    && rm -rf /out/usr/lib/systemd /out/usr/include /out/usr/lib/pkgconfig

# ---- runtime: the shared libraries only --------------------------------------
FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ferry" \
      org.opencontainers.image.description="Schematic datastream to Redis replicator, a drop-in for schematic-replicator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/ferry/ferry" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
# curl is for the HEALTHCHECK; ca-certificates for wss:// and https://.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libwebsockets17 libhiredis0.14 libinih1 libjansson4 libcurl4 \
        libssl3 libsystemd0 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin ferry
COPY --from=build /out/ /
# The Go image listens on all interfaces; etc/ferry.ini reads HTTP_HOST.
ENV HTTP_HOST=0.0.0.0 \
    HEALTH_PORT=8090
USER ferry:ferry
EXPOSE 8090
# /health is liveness: 200 while ferry is alive and making progress.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${HEALTH_PORT}/health" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/ferry"]
CMD ["run", "-c", "/etc/ferry/ferry.ini"]
