# syntax=docker/dockerfile:1.6
FROM lukemathwalker/cargo-chef:latest-rust-1.79 AS chef
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Build dependencies - this is the caching Docker layer!
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/app/target \
    cargo build --release --bin server && cp target/release/server /usr/local/bin/server

FROM gcr.io/distroless/cc-debian12@sha256:3b75fdd33932d16e53a461277becf57c4f815c6cee5f6bc8f52457c095e004c8 AS runtime
COPY --from=builder /usr/local/bin/server /usr/local/bin/server
USER nonroot:nonroot
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/server"]
