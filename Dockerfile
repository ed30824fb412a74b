# syntax=docker/dockerfile:1
# sipsettings image: docker build -t sipsettings .
# scripts/image-smoke.sh runs this file's build command, ENV, ENTRYPOINT/CMD and HEALTHCHECK
# outside Docker (CI has no engine); keep each of them a single JSON-array or KEY=VALUE form.

# Build stage: dependencies are compiled in their own cached layer (a stub crate), so a
# change in src/ rebuilds only sipsettings itself.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Bench targets are declared in Cargo.toml, so their files must exist for any build.
COPY benches ./benches
RUN mkdir -p src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked && rm -rf src
COPY src ./src
COPY migrations ./migrations
# COPY keeps the context's mtimes, which may be older than the stub's build: touch them.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked
# The data volume must belong to the runtime user, or a fresh named volume is read-only for it.
RUN mkdir -p /data

# Final stage: distroless (glibc, CA roots, no shell, no package manager, no compiler).
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="sipsettings" \
      org.opencontainers.image.description="Self-hosted SIP account settings server (sip2sip settings.phtml compatible)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /src/target/release/sipsettings /usr/local/bin/sipsettings
COPY --from=build --chown=65532:65532 /data /data
ENV SIPSETTINGS_DATA_DIR=/data \
    SIPSETTINGS_LISTEN=0.0.0.0:8080 \
    SIPSETTINGS_TLS_LISTEN=0.0.0.0:8443
VOLUME ["/data"]
EXPOSE 8080 8443
# 65532 = "nonroot" in distroless; numeric so that Kubernetes' runAsNonRoot can check it.
USER 65532:65532
# The healthcheck subcommand reads the same configuration (environment, SIPSETTINGS_CONFIG
# file, *_FILE secrets) as serve, so a changed SIPSETTINGS_LISTEN is followed.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/sipsettings", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sipsettings"]
CMD ["serve"]
