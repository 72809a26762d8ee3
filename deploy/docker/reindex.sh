#!/usr/bin/env bash
# stickers-reindex (the service image): "sticker packs changed". Embeds the catalogue under
# $STICKERS_DATA/serving/catalog again with the served model (unchanged stickers' image features come from
# the feature cache), publishes a new index version next to the served one (CURRENT moves only once it
# is complete), then asks one replica to load it (POST /admin/reload), which tells the others over Redis.
# Until then every replica keeps answering from the version it has.
#   STICKERS_SERVICE_URL (default http://127.0.0.1:8000), STICKERS_ADMIN_TOKEN; extra arguments go to
#   `python -m index build` (e.g. --packs noto,twemoji).
set -euo pipefail
DATA=${STICKERS_DATA:-/data}
URL=${STICKERS_SERVICE_URL:-http://127.0.0.1:8000}
echo "[reindex] building a new index version under $DATA/serving/index"
python -m index build --model "$DATA/serving/model" --catalog "$DATA/serving/catalog" \
    --out "$DATA/serving/index" --feature-cache "$DATA/features" --models-dir "$DATA/models" "$@"
echo "[reindex] asking $URL to load it"
python - "$URL" <<'PY'
import json, os, sys, urllib.request
request = urllib.request.Request(sys.argv[1] + "/admin/reload", data=b"{}", method="POST", headers={
    "Authorization": "Bearer " + os.environ["STICKERS_ADMIN_TOKEN"], "Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=300) as response:
    body = json.load(response)
print(f"[reindex] serving {body['index_version']} (was {body['previous_version']}); "
      f"other replicas told: {body['published']}")
PY
