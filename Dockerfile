# One image for every CSU service and the admin CLI:
#   python -m services.<ingest|masking|archive|requisition|gateway>   (the Helm chart sets the command)
#   csuctl ...                                                         (e.g. csuctl db migrate, csuctl health)
# Build with `make image` (Docker where an engine answers, else Debian's buildah). The base is pinned
# to an exact Python/Debian release; rebuild on purpose to take security updates, never by accident.
#
# BASE: Python on Debian trixie. Where a registry image can be pulled, the official one pinned here;
# where none can (no Docker Hub), `make image` makes one from Debian's own packages with mmdebstrap
# (deploy/image/debian-base.sh: trixie's python3, 3.13; requirements.lock is universal, >= 3.12) and
# passes it here. Both stages use the same base, so the virtualenv's interpreter is the one it was
# built with.
ARG BASE=python:3.12.12-slim-trixie

# --- build: dependencies from the lock, generated gRPC code, bytecode ---------------------------
FROM ${BASE} AS build

# The CA bundle is named explicitly: a build behind a TLS-inspecting proxy mounts the host's bundle
# over this path for its RUN steps (make image does); uv and pip read SSL_CERT_FILE and PIP_CERT.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt

# The same uv the Makefile uses, in a virtualenv of its own (Debian's Python refuses pip installs
# outside one); it stays in this stage.
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --quiet "uv==0.13.9"

# Sources sit where they run (/app), so the compiled bytecode names the right files.
WORKDIR /app
COPY pyproject.toml requirements.lock ./
# Runtime dependencies only (pyproject's [project] dependencies), each at the exact version pinned
# in requirements.lock. The lock also pins the dev extra (pytest, moto, playwright...), which the
# constraint file only constrains and never installs.
RUN python3 -m venv /opt/venv \
    && /opt/uv/bin/uv pip install --python /opt/venv/bin/python --constraint requirements.lock -r pyproject.toml

COPY proto ./proto
COPY services ./services
# `make proto`: the gRPC modules are generated from proto/ at build time, never committed. Then
# bytecode, because the root filesystem is read-only at run time.
RUN /opt/venv/bin/python proto/generate.py \
    && /opt/venv/bin/python -m compileall -q --invalidation-mode checked-hash services \
    && printf '#!/bin/sh\nexec /opt/venv/bin/python -m services.csuctl "$@"\n' > /opt/venv/bin/csuctl \
    && chmod 0755 /opt/venv/bin/csuctl

# --- runtime: the virtualenv and the code, nothing else -----------------------------------------
FROM ${BASE}

LABEL org.opencontainers.image.title="csu-platform" \
      org.opencontainers.image.description="CSU platform services (ingest, masking, archive, requisition, gateway) and csuctl" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"

# /data is the services' working folder (CSU_DATA_DIR); the chart mounts a volume over it.
RUN groupadd --system --gid 10001 csu \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin csu \
    && install -d -o 10001 -g 10001 -m 0750 /data

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/services /app/services

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CSU_DATA_DIR=/data

WORKDIR /app
USER 10001:10001

# Listening addresses stay the settings' loopback defaults until the deployment sets
# CSU_BIND_HOST/CSU_GATEWAY_HOST (the chart does). Ports: health/metrics HTTP (8180 in the chart;
# the gateway's public port 8080), gRPC of ingest, masking, archive and requisition.
EXPOSE 8080 8180 50051 50052 50053 50054

# Probes: Kubernetes asks each service's /healthz (liveness) and /readyz (readiness) on its HTTP
# port (deploy/helm/csu). The port depends on which service the container runs, so the image
# declares no Docker HEALTHCHECK of its own.
HEALTHCHECK NONE

# The command names the service; alone, the image explains itself.
CMD ["csuctl", "--help"]
