# gregor: one image for the mini-zookeeper and the brokers.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY vendor ./vendor
COPY benches ./benches
RUN cargo build --release --bin gregor

FROM debian:bookworm-slim
COPY --from=build /src/target/release/gregor /usr/local/bin/gregor
COPY config /etc/gregor
WORKDIR /var/lib/gregor
ENTRYPOINT ["gregor"]
