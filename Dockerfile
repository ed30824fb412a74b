# syntax=docker/dockerfile:1
# Build stage: dependencies are cached in their own layer.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Bench targets are declared in Cargo.toml, so their files must exist for any build.
COPY benches ./benches
RUN mkdir -p src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked && rm -rf src
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

# Final stage: no shell, no compiler, non-root.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="sipsettings" \
      org.opencontainers.image.description="SIP account settings server (sip2sip settings.phtml compatible)" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /src/target/release/sipsettings /usr/local/bin/sipsettings
ENV SIPSETTINGS_DATA_DIR=/data \
    SIPSETTINGS_LISTEN=0.0.0.0:8080 \
    SIPSETTINGS_TLS_LISTEN=0.0.0.0:8443
VOLUME ["/data"]
EXPOSE 8080 8443
USER nonroot:nonroot
HEALTHCHECK --interval=30s --timeout=5s CMD ["/usr/local/bin/sipsettings", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sipsettings"]
CMD ["serve"]
