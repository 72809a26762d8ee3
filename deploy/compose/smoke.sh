#!/usr/bin/env bash
# `make compose-smoke`: the compose stack as an operator runs it, checked end to end, then brought down.
#   1. images: where Docker Hub is unreachable (these machines), local stand-ins for python:3.11-slim,
#      redis and prometheus from Debian's packages (local-base.sh); Grafana has no stand-in and is not
#      started then (its dashboard's queries are run against Prometheus instead, as Grafana would);
#      a local torch==2.13.0 wheel, when pip finds one, goes into the build context
#   2. build the `init` and `service` images; start the stack: `init` fills the named volume (its log
#      streams here), then the service, Redis and Prometheus
#   3. wait for /readyz; a real /recommend, a sticker image, /demo; the service runs as uid 10001 and
#      Redis refuses a client without the password
#   4. Prometheus: up{job="stickers"} == 1, every dashboard query returns data, every alert rule loaded
#      and evaluated
#   5. reindex ("packs changed") through stickers-reindex; the service serves the new version
#   6. docker-compose down (the data volume is kept, so a rerun reuses the trained model; SMOKE_CLEAN=1
#      removes it)
# Needs a Docker daemon (started here if absent and this is root), docker-compose or `docker compose`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-stickers-smoke}
export STICKERS_PORT=${STICKERS_PORT:-18000} PROMETHEUS_PORT=${PROMETHEUS_PORT:-19090} GRAFANA_PORT=${GRAFANA_PORT:-13000}
export STICKERS_ADMIN_TOKEN=${STICKERS_ADMIN_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export REDIS_PASSWORD=${REDIS_PASSWORD:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
SERVICE=http://127.0.0.1:$STICKERS_PORT
PROMETHEUS=http://127.0.0.1:$PROMETHEUS_PORT
PYTHON=${PYTHON:-python3}
started=$(date +%s)
say() { echo "[smoke +$(( $(date +%s) - started ))s] $*"; }
fail() { say "FAILED: $*"; exit 1; }

if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi

dockerd_pid=
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null && [ "$(id -u)" = 0 ] || fail "no Docker daemon (start dockerd)"
    say "starting dockerd"
    dockerd >/tmp/compose-smoke-dockerd.log 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
cleanup() {
    say "bringing the stack down"
    "${compose[@]}" down --remove-orphans $([ "${SMOKE_CLEAN:-0}" = 1 ] && echo -v) || true
    [ -n "$dockerd_pid" ] && kill "$dockerd_pid" || true
}
trap cleanup EXIT

# 1. images that cannot be pulled here
if ! docker image inspect python:3.11-slim >/dev/null 2>&1 && ! timeout 60 docker pull -q python:3.11-slim >/dev/null 2>&1
then
    say "Docker Hub unreachable: local stand-in images from Debian's packages"
    deploy/compose/local-base.sh
    export BASE_IMAGE=localpython:3.11-slim REDIS_IMAGE=localredis:bookworm PROMETHEUS_IMAGE=localprometheus:bookworm
    with_grafana=0
else
    with_grafana=1
fi
wheels=deploy/docker/wheels
if ls $wheels/torch-2.13.0*.whl >/dev/null 2>&1 \
   || "$PYTHON" -m pip download --quiet --no-deps --no-index --dest $wheels torch==2.13.0 >/dev/null 2>&1; then
    say "torch from the local wheel $(ls $wheels/torch-2.13.0*.whl | xargs -n1 basename)"
    export TORCH_INDEX_URL=""  # no wheel index: PyPI for the rest, the wheel above for torch
fi

# 2. build and start
say "building the init and service images"
"${compose[@]}" build init service
say "starting redis, then init (fills the data volume; its log follows)"
"${compose[@]}" up -d redis
"${compose[@]}" up --no-color init
code=$(docker inspect -f '{{.State.ExitCode}}' "$("${compose[@]}" ps -q init)")
[ "$code" = 0 ] || fail "init exited with $code"
services=(service prometheus)
[ "$with_grafana" = 1 ] && services+=(grafana)
say "starting ${services[*]}"
"${compose[@]}" up -d "${services[@]}"

# 3. the service
say "waiting for $SERVICE/readyz"
for i in $(seq 600); do
    curl -sf "$SERVICE/readyz" >/dev/null 2>&1 && break
    [ "$i" = 600 ] && { "${compose[@]}" logs --tail 50 service; fail "not ready after 10 minutes"; }
    sleep 1
done
say "ready: $(curl -s "$SERVICE/readyz")"
recommend() {
    curl -sf "$SERVICE/recommend" -H 'content-type: application/json' -d "{\"dialogue\": [
        {\"speaker\": \"A\", \"text\": \"How did the exam go?\"},
        {\"speaker\": \"B\", \"text\": \"$1\"}], \"top_k\": 5}"
}
body=$(recommend "I failed my driving test again...") || fail "/recommend"
echo "$body" | "$PYTHON" -c '
import json, sys
body = json.load(sys.stdin)
assert len(body["hits"]) == 5, body
print("  emotion:", body["emotion"], " intention:", body["intention"])
for hit in body["hits"]:
    print("  %.3f  %-28s %s" % (hit["score"], hit["sticker_id"], hit.get("name") or ""))
' || fail "/recommend body"
image=$(echo "$body" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["hits"][0]["image_url"])')
curl -sf -o /dev/null "$SERVICE$image" || fail "sticker image $image"
curl -sf "$SERVICE/demo" | grep -q 'id="dialogue"' || fail "/demo"
uid=$("${compose[@]}" exec -T service id -u | tr -d '\r')
[ "$uid" = 10001 ] || fail "service runs as uid $uid"
noauth=$("${compose[@]}" exec -T redis env -u REDISCLI_AUTH redis-cli ping 2>&1 | tr -d "\r")
[[ "$noauth" == *NOAUTH* ]] || fail "redis answers without the password: $noauth"
say "recommend, image, /demo OK; service uid $uid; redis without password: $noauth"

# traffic over several scrapes (5 s), with repeats that the Redis cache answers
for i in $(seq 30); do recommend "we won the match $(( i % 5 ))" >/dev/null || fail "/recommend #$i"; sleep 1; done

# 4. Prometheus and the dashboard's queries
"$PYTHON" - "$PROMETHEUS" deploy/grafana/dashboards/latency.json deploy/prometheus/alerts.yml <<'PY' || fail "prometheus checks"
import json, sys, time, urllib.parse, urllib.request
import yaml
prometheus, dashboard, alerts = sys.argv[1:]

def query(expr):
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.load(urllib.request.urlopen(url, timeout=10))
    assert body["status"] == "success", body
    return body["data"]["result"]

up = query('up{job="stickers"}')
print("  up{job=\"stickers\"}:", [(s["metric"]["instance"], s["value"][1]) for s in up])
assert up and all(s["value"][1] == "1" for s in up), up
empty = []
for panel in json.load(open(dashboard))["panels"]:
    for target in panel.get("targets", []):
        result = query(target["expr"].replace("$__rate_interval", "1m"))
        values = ", ".join(f"{float(s['value'][1]):.4g}" for s in result[:3])
        print(f"  {'ok   ' if result else 'EMPTY'} {panel['title'][:44]:44s} {values}")
        if not result:
            empty.append(target["expr"])
assert not empty, f"dashboard queries without data: {empty}"
expected = sum(len(g["rules"]) for g in yaml.safe_load(open(alerts))["groups"])
for _ in range(30):
    groups = json.load(urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=10))["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    if len(rules) == expected and all(r.get("health") == "ok" for r in rules):
        break
    time.sleep(1)
print(f"  alert rules: {len(rules)} loaded, health",
      sorted({r.get('health') for r in rules}), "firing:", [r["name"] for r in rules if r.get("state") == "firing"])
assert len(rules) == expected and all(r.get("health") == "ok" for r in rules)
PY
say "prometheus: the job is up, every dashboard query has data, the alert rules evaluate"

# 5. packs changed: reindex from the service container, the service loads and announces the new version
if [ "${SMOKE_REINDEX:-1}" = 1 ]; then
    before=$(curl -s "$SERVICE/readyz" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["index_version"])')
    say "reindex (stickers-reindex in the service container); serving $before"
    "${compose[@]}" exec -T service stickers-reindex --no-progress || fail "stickers-reindex"
    after=$(curl -s "$SERVICE/readyz" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["index_version"])')
    [ "$after" != "$before" ] || fail "still serving $before after the reindex"
    recommend "thanks so much for the gift" >/dev/null || fail "/recommend after the reindex"
    say "serving $after after the reindex"
fi
say "compose smoke passed"
