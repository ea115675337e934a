# syntax=docker/dockerfile:1
#
# synctv server image. Two stages: a Rust toolchain builds the `synctv` binary, and a
# slim Debian runtime (same release as the builder, so glibc matches) runs it as a
# non-root user. Configuration comes only from SYNCTV__* environment variables; see
# DEPLOYMENT.md and the config table in the wire contract.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src

# Dependency layer: copy only the manifests and build the whole dependency graph against
# stub sources. This layer is reused until a Cargo.toml or Cargo.lock changes, so editing
# our own code rebuilds our crates only.
COPY Cargo.toml Cargo.lock ./
COPY synctv-core/Cargo.toml synctv-core/
COPY synctv-cluster/Cargo.toml synctv-cluster/
COPY synctv-api/Cargo.toml synctv-api/
COPY synctv-bench/Cargo.toml synctv-bench/
RUN for crate in synctv-core synctv-cluster; do \
        mkdir -p "$crate/src" && touch "$crate/src/lib.rs"; \
    done \
    && for crate in synctv-api synctv-bench; do \
        mkdir -p "$crate/src" && echo 'fn main() {}' > "$crate/src/main.rs"; \
    done \
    && cargo build --release --locked -p synctv-api \
    && rm -rf synctv-*/src

# The real sources. Migrations are embedded into the binary at compile time
# (sqlx::migrate!), so they must be here before the build.
COPY migrations migrations
COPY synctv-core synctv-core
COPY synctv-cluster synctv-cluster
COPY synctv-api synctv-api
COPY synctv-bench synctv-bench
# COPY keeps the build context's modification times, which can be older than the stub
# build above; touching makes cargo rebuild our crates instead of keeping the stubs.
RUN find synctv-core synctv-cluster synctv-api synctv-bench -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p synctv-api \
    && install -m 0755 target/release/synctv /usr/local/bin/synctv


FROM debian:bookworm-slim AS runtime
# curl serves the HEALTHCHECK; ca-certificates lets the server reach rediss:// and TLS
# Postgres. Package versions follow the pinned base image: pinning them too would break
# the build whenever Debian publishes a security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric UID, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 synctv \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin synctv \
    && mkdir -p /app/data \
    && chown 10001:10001 /app/data

WORKDIR /app
COPY --from=builder /usr/local/bin/synctv /usr/local/bin/synctv
# Kept beside the binary for operators who inspect or apply them by hand; the binary
# carries its own copy.
COPY migrations /app/migrations

# The embedded SQLite default lives in ./data, i.e. /app/data: mount a volume there for a
# single node. Listening on 0.0.0.0 is required inside a container.
ENV SYNCTV__SERVER__HOST=0.0.0.0 \
    SYNCTV__SERVER__PORT=8080 \
    SYNCTV__LOG__FORMAT=json

USER 10001:10001
EXPOSE 8080

# /health answers 200 while the process lives; /ready is for load balancers, not for
# restarts (a degraded node must keep serving its clients).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/bin/sh", "-c", "curl -fsS -o /dev/null http://127.0.0.1:${SYNCTV__SERVER__PORT:-8080}/health || exit 1"]

# `synctv` alone runs the server; `docker run IMAGE migrate` runs the migrations only.
ENTRYPOINT ["synctv"]
