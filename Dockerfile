# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust image, run as a non-root user on a slim base.
#   docker build -t gateway .
#   docker run -p 8080:8080 -v "$PWD/gateway.toml:/etc/gateway/gateway.toml:ro" \
#     -e GATEWAY_AUTH__SECRET_FILE=/run/secrets/jwt gateway

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && for b in $(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | tail -n +2); do echo 'fn main() {}' > "benches/$b.rs"; done \
    && cargo build --release --locked --bin gateway || true
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin gateway

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin gateway
COPY --from=build /src/target/release/gateway /usr/local/bin/gateway
COPY gateway.toml users.toml /etc/gateway/
WORKDIR /etc/gateway
ENV GATEWAY_CONFIG=/etc/gateway/gateway.toml \
    GATEWAY_SERVER__LISTEN=0.0.0.0:8080
USER 10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["serve"]
