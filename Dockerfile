# Gatescope in a container: the web app with a CPU-only PyTorch, serving on port 8000.
#
#   docker build -t gatescope .
#   docker run -p 8000:8000 -v gatescope-data:/data gatescope     # then open http://127.0.0.1:8000
#
# Build arguments:
#   TORCH_INDEX_URL  where torch comes from. Default: PyTorch's CPU-only wheel index (a ~200 MB wheel,
#                    where PyPI's torch is a CUDA build of several GB). Set it empty
#                    (--build-arg TORCH_INDEX_URL=) to take torch from PyPI or from docker/wheels/.
#   TORCH_VERSION    the torch version; must equal the torch pin in pyproject.toml (the build checks it,
#                    and so does tests/test_dockerfile.py).
# Optional build inputs, harmless when absent:
#   docker/wheels/   wheels put here are offered to pip (--find-links): a local torch CPU wheel is used
#                    instead of downloading one. scripts/docker_local.sh does that; *.whl are gitignored.
#   secret pip_cert  a CA bundle for pip, for networks that inspect TLS:
#                    --secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt
#
# Written against python3 and a venv, not /usr/local/bin/python: it works on the official image and on
# a Debian bookworm rootfs imported under the same name (see scripts/docker_local.sh).

FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app

# An unprivileged user (numeric ids, fixed so volumes keep their owner across rebuilds) and the data
# directory it owns. Early, so that changing the code does not redo it.
RUN groupadd --gid 10001 gatescope \
    && useradd --uid 10001 --gid 10001 --no-log-init --create-home --home-dir /home/gatescope \
        --shell /usr/sbin/nologin gatescope \
    && mkdir -p /data \
    && chown 10001:10001 /data

# 1. Dependencies, in a layer of their own: only pyproject.toml is copied, so editing the code does
#    not reinstall torch. The list is read from pyproject.toml ([build-system] requires too, so the
#    package below installs without network access). torch goes first, from TORCH_INDEX_URL.
COPY pyproject.toml ./
# DL3013: the versions are pinned in pyproject.toml, which hadolint cannot see.
# hadolint ignore=DL3013
RUN --mount=type=secret,id=pip_cert \
    --mount=type=bind,source=docker/wheels,target=/tmp/wheels \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    python3 -m venv "$VIRTUAL_ENV"; \
    "$VIRTUAL_ENV/bin/python" -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); print("\n".join(p["build-system"]["requires"] + p["project"]["dependencies"]))' > /tmp/requirements.txt; \
    if ! grep -qx "torch==${TORCH_VERSION}" /tmp/requirements.txt; then \
        echo "error: TORCH_VERSION=${TORCH_VERSION} is not the torch pin in pyproject.toml" >&2; exit 1; \
    fi; \
    pip install --find-links /tmp/wheels ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION}"; \
    pip install --find-links /tmp/wheels -r /tmp/requirements.txt; \
    rm /tmp/requirements.txt; \
    python -c 'import torch; print("torch", torch.__version__, "cuda:", torch.version.cuda)'

# 2. The code, installed without dependencies. Editable: app/main.py finds templates/ and static/
#    beside the package, in /app. README.md is the package's long description.
COPY README.md ./
COPY app/ app/
COPY templates/ templates/
COPY static/ static/
RUN pip install --no-deps --no-build-isolation --editable . \
    && python -c 'import app.main'

ENV GATESCOPE_HOST=0.0.0.0 \
    GATESCOPE_PORT=8000 \
    GATESCOPE_DATA_DIR=/data
VOLUME ["/data"]

# Numeric, so a runtime can tell it is not root (Kubernetes runAsNonRoot).
USER 10001:10001
EXPOSE 8000

# The health endpoint needs no token; urllib raises (exit 1) on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import json, os, urllib.request as u; port = os.environ.get('GATESCOPE_PORT', '8000'); r = json.load(u.urlopen('http://127.0.0.1:' + port + '/api/health', timeout=4)); raise SystemExit(r.get('status') != 'ok')"]

CMD ["python3", "-m", "app"]
