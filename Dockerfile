# cnnserve container image: gRPC on 8001, Prometheus metrics on 8002, the default model repository in /models.
#
#   podman build --pull=never --format docker -t localhost/cnnserve:0.1.0 .     (or: docker build -t ... .)
#   podman run --init --rm -p 127.0.0.1:8001:8001 -p 127.0.0.1:8002:8002 localhost/cnnserve:0.1.0 [FLAGS]
#   podman run ... -v /path/to/repository:/models:ro localhost/cnnserve:0.1.0     (your own models)
#
# Flags after the image name are added to the defaults and win over them (deploy/container/entrypoint.sh):
# --model-repository /models --address 0.0.0.0:8001 --metrics-address 0.0.0.0:8002. Run with --init (or under
# Kubernetes): SIGTERM turns health NOT_SERVING, finishes admitted requests (--drain-timeout-s, default 30) and
# exits 0. On a host with a CPU quota below its core count pass --threads N (cnnserve counts the host's cores).
# TLS and tokens: mount the files and set CNNSERVE_TLS_CERT, CNNSERVE_TLS_KEY, CNNSERVE_TLS_CA (the CA that signed
# the certificate, for the HEALTHCHECK), CNNSERVE_AUTH_TOKEN_FILE (and for mTLS CNNSERVE_TLS_CLIENT_CA,
# CNNSERVE_PROBE_TLS_CERT, CNNSERVE_PROBE_TLS_KEY): the entrypoint turns them into flags and the HEALTHCHECK
# probes with them (deploy/container/healthcheck.sh). The metrics endpoint (8002) is plain HTTP: publish it only
# to networks that may read it.
# Only Debian's apt archive is needed to build (FROM debian:bookworm resolves locally with --pull=never after
# ../shared/container/oci-setup.sh). deploy/README.md has the rest; deploy/tests/container_test.sh tests it.

# ---- builder: Debian's -dev packages, a Release build, the fast unit tests ---------------------------------
FROM debian:bookworm AS builder
ARG DEBIAN_FRONTEND=noninteractive
# The -dev packages of tools/scripts/install_deps.sh, plus libgmock-dev (several unit tests use gmock) and ccache
# (for the cache mount below); no Python/PyTorch, datasets, nginx or node: the image needs neither the zoo
# export nor the integration tests.
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      build-essential cmake ninja-build pkg-config ccache ca-certificates \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libssl-dev openssl \
      libdnnl-dev libopencv-dev libpng-dev zlib1g-dev libspdlog-dev libgtest-dev libgmock-dev libonnx-dev \
      ocl-icd-opencl-dev opencl-headers prometheus-cpp-dev libcpp-httplib-dev nlohmann-json3-dev \
 && rm -rf /var/lib/apt/lists/*

# The unit tests run here: every GoogleTest binary that needs neither the model zoo (make zoo, PyTorch) nor
# Fashion-MNIST test images written by PyTorch nor ONNX's test data nor a live server: about 10 s on 2 cores.
# Left out: servables_test, service_test and native_classify_test (Fashion-MNIST fixture), onnx_node_test
# (libonnx-testdata), integration_* (live servers, Python clients), the cnnbench parity tests (the zoo).
# `make test` runs all of them.
ARG UNIT_TESTS="batching_test preprocess_test transport_test auth_test repository_test onnx_importer_test graph_test \
ops_shape_inference_test ops_reference_kernel_test ops_registry_test ops_robustness_test \
reference_backend_test dnnl_ops_test dnnl_plan_test"

WORKDIR /src
# Sources only (see .dockerignore), one folder at a time so that editing docs or deploy/ keeps the build cached.
COPY CMakeLists.txt ./
COPY proto proto
COPY engine engine
COPY models models
COPY bench bench
COPY server server
COPY tools tools
COPY tests tests
# ccache persists between image builds on one machine (a BuildKit/buildah cache mount, never in a layer).
RUN --mount=type=cache,id=cnnserve-ccache,target=/root/.cache/ccache \
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCNNSERVE_ZOO_DIR=/nonexistent \
 && cmake --build build -j "$(nproc)" --target cnnserve cnnctl ${UNIT_TESTS} \
 && for t in ${UNIT_TESTS}; do \
      echo "== ${t}"; CNNSERVE_SOURCE_DIR=/src build/bin/${t} --gtest_brief=1 || exit 1; \
    done \
 && ccache --show-stats | head -n 8

# What the runtime stage takes: stripped binaries, the model repository (model folders only, no library code)
# and the Debian packages that own the shared libraries the binaries load (from ldd, so a new dependency is
# picked up without editing this file).
RUN mkdir -p /out/bin \
 && install -m 0755 -s build/bin/cnnserve build/bin/cnnctl /out/bin/ \
 && cp -r models/repository /out/models && find /out/models -maxdepth 1 -type f -delete \
 && ldd /out/bin/cnnserve /out/bin/cnnctl | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u \
    | while read -r lib; do \
        base=${lib##*/}; \
        dpkg -S "*/${base}" | awk -F': ' -v b="/${base}" 'substr($2, length($2) - length(b) + 1) == b {print $1}'; \
      done | tr ',' '\n' | sed 's/^ *//; s/:.*$//' | sort -u > /out/runtime-packages.txt \
 && echo "runtime packages:" $(cat /out/runtime-packages.txt)

# ---- runtime: the runtime libraries, the binaries and the default repository; non-root ----------------------
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
COPY deploy/container/dpkg-excludes /etc/dpkg/dpkg.cfg.d/cnnserve-excludes
# OpenCV's core library links libGLX (OpenGL interop, unused here), whose package pulls Mesa and LLVM (~170 MB):
# an empty package stands in for Mesa's GLX vendor library (deploy/container/no-glx-vendor.control).
COPY deploy/container/no-glx-vendor.control /tmp/no-glx-vendor/DEBIAN/control
COPY --from=builder /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN dpkg-deb --build /tmp/no-glx-vendor /tmp/no-glx-vendor.deb >/dev/null \
 && dpkg -i /tmp/no-glx-vendor.deb \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends $(cat /tmp/runtime-packages.txt) \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* /tmp/runtime-packages.txt /tmp/no-glx-vendor* \
 && useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin cnnserve

COPY --from=builder /out/bin/ /usr/local/bin/
COPY deploy/container/entrypoint.sh /usr/local/bin/cnnserve-entrypoint
COPY deploy/container/healthcheck.sh /usr/local/bin/cnnserve-healthcheck
COPY --from=builder /out/models/ /models/

LABEL org.opencontainers.image.title="cnnserve" \
      org.opencontainers.image.description="gRPC and HTTP image-classification inference server (oneDNN, OpenCV)"
# OpenCV reads its decoder cap only from the start-up environment: the same as cnnserve's --max-pixels default
# (cnnserve checks the declared size itself before decoding; this is the second line).
ENV OPENCV_IO_MAX_IMAGE_PIXELS=40000000 \
    CNNSERVE_MODEL_REPOSITORY=/models
EXPOSE 8000 8001 8002
USER 10001:10001
WORKDIR /
# Kept with `--format docker` (OCI images have no HEALTHCHECK). `cnnserve --health-probe 127.0.0.1:8001`, with
# --tls-ca (and a client certificate under mTLS) when TLS is set through the variables above. Kubernetes runs
# its own exec probes (deploy/k8s/deployment.yaml).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["cnnserve-healthcheck"]
ENTRYPOINT ["cnnserve-entrypoint"]
