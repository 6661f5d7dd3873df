# syntax=docker/dockerfile:1.7
# The doc-classifier server with its model baked in (see docs/deploy.md, "Model in the image").
#
#   make image      # docker build -t doc-classifier:<model_version>-<git rev> . (+ kind/minikube load)
#   docker run --rm -p 3000:3000 doc-classifier:<tag>
#
# Build stage: Debian bookworm, the same glibc as the runtime image. The full rust image (not -slim)
# because tikv-jemalloc-sys runs make and aws-lc-sys needs a C compiler.
ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# The registry and target folders are cache mounts, so a rebuild after a code change recompiles only
# the workspace crates. --locked: exactly the dependency versions of Cargo.lock.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p serve --bin serve \
    && objcopy --compress-debug-sections=zlib target/release/serve /serve

# Runtime: glibc, libgcc and CA certificates only (jemalloc is linked in statically); no shell, no
# package manager. Runs as uid/gid 65532, with a read-only root file system in Kubernetes.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG MODEL_VERSION=unknown
ARG GIT_REV=unknown
# The model file, inside the build context (.dockerignore lets data/*.bin through).
ARG MODEL=data/model.bin
LABEL org.opencontainers.image.title="doc-classifier" \
      org.opencontainers.image.description="20 Newsgroups classifier server with Prometheus metrics, OTLP traces and JSON logs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${MODEL_VERSION}" \
      org.opencontainers.image.revision="${GIT_REV}"
COPY --from=build /serve /usr/local/bin/serve
# data/model.bin is written 0600 by train; the image's user must be able to read it.
COPY --chmod=0444 ${MODEL} /model/model.bin
ENV MODEL_PATH=/model/model.bin \
    SERVE_ADDR=0.0.0.0:3000
USER 65532:65532
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/serve"]
