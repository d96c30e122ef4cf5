# syntax=docker/dockerfile:1
#
# An example base image for UDFs that send frames over RDMA: Python, the
# numaflow-rdma transport with ucxx, pynumaflow, and a UCX built with verbs,
# rdmacm and CUDA. The UCX inside the ucxx-cu12 wheels is built without verbs
# and rdmacm, so on its own it can only use TCP and shared memory; with
# RAPIDS_LIBUCX_PREFER_SYSTEM_LIBRARY=true the libucx package loads the UCX
# below instead. Build it from the repository root:
#
#   docker build -f images/udf-base.Dockerfile -t <registry>/numaflow-rdma-udf:0.1.0 .
#
# and start your UDF image FROM it, adding your model and frameworks.

ARG CUDA_VERSION=12.9.1
ARG UBUNTU=ubuntu24.04
# ucxx-cu12 0.52 requires libucx-cu12 >=1.19,<1.22; the system UCX matches the
# 1.21.0 that pip installs, so libucxx finds every symbol it was built with.
ARG UCX_VERSION=1.21.0

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS ucx
ARG UCX_VERSION
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        autoconf automake build-essential ca-certificates curl libtool pkg-config \
        libibverbs-dev librdmacm-dev libnuma-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# NOTE: the tarball is fetched over HTTPS without a pinned checksum; pin
# UCX's published SHA-256 here before using the image in production.
RUN curl -fsSL "https://github.com/openucx/ucx/releases/download/v${UCX_VERSION}/ucx-${UCX_VERSION}.tar.gz" \
        | tar xz --strip-components=1 \
    && ./contrib/configure-release \
        --prefix=/opt/ucx \
        --with-verbs \
        --with-rdmacm \
        --with-cuda=/usr/local/cuda \
        --enable-mt \
        --without-go \
        --without-java \
    && make -j"$(nproc)" \
    && make install

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
# Runtime libraries of verbs (with the providers of Mellanox and other NICs),
# rdmacm and NUMA, and Python.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libibverbs1 librdmacm1 ibverbs-providers libnuma1 \
        python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY --from=ucx /opt/ucx /opt/ucx
# libucx dlopen()s "libucs.so" and friends by these unversioned names, so
# the folder with the development links must be on the loader's path.
RUN echo /opt/ucx/lib > /etc/ld.so.conf.d/ucx.conf && ldconfig

WORKDIR /src
COPY pyproject.toml README.md ./
COPY numaflow_rdma ./numaflow_rdma
COPY webhook ./webhook
COPY dnssync ./dnssync
COPY transport ./transport
RUN python3 -m venv /opt/udf \
    && /opt/udf/bin/pip install --no-cache-dir ".[ucx]" "pynumaflow==0.14.0" \
    && rm -rf /src

ENV PATH=/opt/udf/bin:/opt/ucx/bin:${PATH} \
    RAPIDS_LIBUCX_PREFER_SYSTEM_LIBRARY=true \
    PYTHONUNBUFFERED=1

# Fail the build when ucxx would still load the wheel's UCX (libucx falls
# back to it silently when the system library cannot be opened), or when the
# system UCX lacks verbs or rdmacm.
RUN python - <<'PY'
import pathlib

import ucxx  # noqa: F401 - importing loads UCX

maps = pathlib.Path("/proc/self/maps").read_text()
assert "/opt/ucx/lib/libucs.so" in maps, "ucxx loaded the UCX inside its wheel, not /opt/ucx"
PY
RUN ucx_info -v | grep -q -- "--with-verbs" && ucx_info -v | grep -q -- "--with-rdmacm"

WORKDIR /app
# RDMA memory registration needs locked memory. A non-root process gets only
# the container runtime's RLIMIT_MEMLOCK (IPC_LOCK does not raise it), so set
# LimitMEMLOCK=infinity for containerd, or run the UDF as root.
USER 65532:65532
