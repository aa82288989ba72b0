# esgate container image: build with the Rust toolchain, run on a slim Debian.
#   docker build -t esgate .      (docker-compose.yml builds it as esgate:dev)
# The runtime image runs `esgate serve --config /etc/esgate/esgate.toml` as an unprivileged user;
# mount the config there and a writable volume at /var/lib/esgate for the token store.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin esgate \
    && cp target/release/esgate /usr/local/bin/esgate

FROM debian:bookworm-slim
# ca-certificates for TLS backends, curl for the compose healthcheck.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/esgate --shell /usr/sbin/nologin esgate \
    && mkdir -p /etc/esgate /var/lib/esgate \
    && chown esgate /var/lib/esgate
COPY --from=build /usr/local/bin/esgate /usr/local/bin/esgate
USER esgate
EXPOSE 9201 9202
ENTRYPOINT ["esgate"]
CMD ["serve", "--config", "/etc/esgate/esgate.toml"]
