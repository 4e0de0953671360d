# syntax=docker/dockerfile:1
#
# sentmon's container image, in two stages:
#   build    Rust on Debian 12; scripts/setup.sh lays out libtorch 2.13.0 from the PyPI wheels
#            (pinned by SHA-256, see ../shared/LIBTORCH.md) exactly as on a development machine,
#            then `cargo build --release --locked`.
#   runtime  debian:bookworm-slim with the binary, the five libtorch libraries it loads, the
#            shipped model and an example config; runs as an unprivileged user.
#
# Build from the repository root:  docker build -t sentmon .
# Not built on the development machine (it has no container engine); tests/operations.rs checks
# its structure (stages, user, libraries) and that it uses setup.sh's pinned wheels.

ARG RUST_VERSION=1.85

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# setup.sh alone first: its layer (Debian packages, ~540 MB of wheels) is then cached across
# source changes. No test tools (Prometheus, Alertmanager) in an image build.
COPY scripts/setup.sh scripts/setup.sh
RUN SENTMON_SETUP_TEST_TOOLS=0 SENTMON_SETUP_GLOVE=0 ./scripts/setup.sh
COPY .cargo .cargo
COPY Cargo.toml Cargo.lock build.rs ./
# benches/ because Cargo.toml declares the bench targets and cargo checks they exist.
COPY benches benches
COPY src src
RUN cargo build --release --locked --bin sentmon

FROM debian:bookworm-slim AS runtime
# Only what the binary links besides libtorch (ldd target/release/sentmon): the C++ runtime,
# zlib and OpenSSL; ca-certificates for TLS to Kafka.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libssl3 libstdc++6 zlib1g \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 sentmon \
 && useradd --system --uid 10001 --gid sentmon --home-dir /var/lib/sentmon --no-create-home \
      --shell /usr/sbin/nologin sentmon \
 && install -d -o sentmon -g sentmon /var/lib/sentmon
# The binary's rpath includes $ORIGIN/../lib, so bin/ + lib/ needs no LD_LIBRARY_PATH. The five
# libraries are all it loads: libtorch_cpu, libc10, the wheel's libgomp, and the two CUDA stubs
# libtorch_cpu.so links against (no GPU is used).
COPY --from=build /src/target/release/sentmon /opt/sentmon/bin/sentmon
COPY --from=build \
     /src/.libtorch/lib/libtorch_cpu.so \
     /src/.libtorch/lib/libc10.so \
     /src/.libtorch/lib/libgomp.so.1 \
     /src/.libtorch/lib/libcudart.so.13 \
     /src/.libtorch/lib/libcupti.so.13 \
     /opt/sentmon/lib/
COPY models/default /opt/sentmon/models/default
COPY config/sentmon.example.toml /etc/sentmon/sentmon.toml

WORKDIR /opt/sentmon
# In a container the metrics port must be reachable from outside it (the example config's
# loopback default suits a host install). No model path here: an environment variable beats the
# config file, so one set in the image would hide a deployment's registry (the Kubernetes pods
# once served this baked-in bundle for ever). The example config's relative `models/default`
# resolves against WORKDIR to the bundle above; Kubernetes seeds its registry from it
# (`sentmon models add /opt/sentmon/models/default ... --promote --if-absent`).
# tests/operations.rs applies this ENV to every shipped config and checks the model each serves.
ENV PATH=/opt/sentmon/bin:$PATH \
    SENTMON__HTTP__LISTEN=0.0.0.0:9898 \
    SENTMON__LOG__FORMAT=json
USER 10001:10001
EXPOSE 9898
ENTRYPOINT ["sentmon"]
CMD ["run", "--config", "/etc/sentmon/sentmon.toml"]
