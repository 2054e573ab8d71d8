# ProLiteMeet Server container image.
#   docker build -t prolitemeet-server .
#   docker run -p 3001:3001 -e FRONTEND_URL=https://meet.example.com prolitemeet-server

# ---- build ----------------------------------------------------------------
# The pinned toolchain (Cargo.toml's rust-version is 1.94; CI uses 1.95.0).
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /app

# Dependencies first, against a placeholder crate, so that this slow layer is
# rebuilt only when Cargo.toml or Cargo.lock change, not on every source edit.
# The workspace's other member, the benchmark load generator (bench/loadgen), is not part of
# the image: its manifest and a placeholder source are all Cargo needs to load the workspace.
COPY Cargo.toml Cargo.lock ./
COPY bench/loadgen/Cargo.toml bench/loadgen/
# The patched Socket.IO crates ([patch.crates-io] in Cargo.toml): without them Cargo cannot
# even load the manifest.
COPY vendor ./vendor
RUN mkdir -p src bench/loadgen/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > bench/loadgen/src/main.rs \
    && cargo build --release --locked -p prolitemeet-server \
    && rm -rf src

# The real sources. `touch` makes them newer than the placeholder build, so
# Cargo rebuilds the crate itself whatever timestamps the copy carried.
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p prolitemeet-server

# ---- run ------------------------------------------------------------------
FROM debian:bookworm-slim

# curl is for the HEALTHCHECK below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=builder /app/target/release/prolitemeet-server /usr/local/bin/prolitemeet-server

# The server reads an optional `.env` from its working directory.
WORKDIR /app
USER 10001:10001

ENV HOST=0.0.0.0 PORT=3001 NODE_ENV=production
EXPOSE 3001

# Shell form, so that ${PORT} is the value the container runs with.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:${PORT}/health || exit 1

# The server shuts down gracefully on SIGTERM and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/prolitemeet-server"]
