# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust image, run as a non-root user on a slim base.
# The steps mirror the README: `cargo build --release --locked`, then `gateway serve --config …`.
#
#   docker build -t gateway .
#   docker run -p 8080:8080 -v "$PWD/secrets:/run/secrets:ro" -v "$PWD/users:/etc/gateway/users:ro" \
#     -e GATEWAY_ROUTES='[{prefix="/", upstream="http://backend:8080"}]' gateway
#
# The image carries deploy/container/gateway.toml: no secret, no user (the repository's gateway.toml and
# users.toml are development fixtures and stay out). secrets/ holds jwt_secret and turnstile_secret.

FROM rust:1.95-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Embedded in the binary (include_bytes!): the browser client and the example app.
COPY web ./web
COPY examples ./examples
COPY benches ./benches
RUN cargo build --release --locked --bin gateway \
    && strip target/release/gateway

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin gateway \
    && mkdir -p /etc/gateway/certs
COPY --from=build /src/target/release/gateway /usr/local/bin/gateway
COPY deploy/container/gateway.toml /etc/gateway/gateway.toml
WORKDIR /etc/gateway
# The config listens on all interfaces inside the container; metrics/health stay on loopback.
ENV GATEWAY_CONFIG=/etc/gateway/gateway.toml \
    GATEWAY_LOG_FORMAT=json
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/gateway", "healthcheck", "--url", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["serve"]
