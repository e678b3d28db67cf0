# syntax=docker/dockerfile:1
#
# The shimshift operator image: `docker build -t REGISTRY/shimshift:0.1.0 .`
#
# Two stages. "build" installs the package and its dependencies into a virtualenv; "runtime" copies
# only that virtualenv onto the same slim base (so the venv's interpreter path stays valid) and runs
# as an unprivileged user. No compilers, no pip cache, no source tree in the final image.
#
# The base is pinned by tag. For a reproducible build pin it by digest too:
#   docker buildx imagetools inspect python:3.11.11-slim-bookworm   # prints the digest
#   docker build --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest> -t ... .
# This image cannot be built in the project's CI (no container registry to pull the base from);
# tests/integration/chart/test_operator_image.py builds and runs the exact package it installs instead.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the package is built from (.dockerignore allows nothing else into the context).
# operator/shimshift/data/{crds,templates,playbooks} are symlinks to these top-level directories; the
# wheel carries copies of the files.
COPY pyproject.toml README.md ./
COPY crds/ crds/
COPY templates/ templates/
COPY playbooks/ playbooks/
COPY operator/ operator/
RUN python -m venv /opt/shimshift \
    && /opt/shimshift/bin/pip install --compile . \
    && /opt/shimshift/bin/shimshift version

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="shimshift" \
      org.opencontainers.image.description="Kubernetes operator that migrates nodes from Docker Engine + dockershim to containerd" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric user (the chart's podSecurityContext.runAsUser), so runAsNonRoot can verify it.
RUN groupadd --system --gid 65532 shimshift \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin shimshift
COPY --from=build /opt/shimshift /opt/shimshift
# Bytecode was compiled at build time; the root filesystem is read-only at run time. HOME is the only
# writable place (/tmp, an emptyDir in the chart).
ENV PATH=/opt/shimshift/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
# kopf's health endpoint and Prometheus metrics (the chart's healthPort and metrics.port).
EXPOSE 8080 9090
ENTRYPOINT ["shimshift"]
CMD ["run", "--liveness=http://0.0.0.0:8080/healthz"]
