#!/usr/bin/env bash
# Machine-specific, for the smoke test only: stand-ins for the public images when no image registry is
# reachable (these machines reach Debian's mirror, PyPI and npm, but not Docker Hub). Builds, each once:
#   localbase:bookworm         debootstrap minbase + this host's CA certificates and apt settings
#   localpython:3.11-slim      Debian's python3 (3.11), pip, venv, a `python` link  (for python:3.11-slim)
#   localredis:bookworm        Debian's redis-server and redis-cli                  (for redis:7.2-alpine)
#   localprometheus:bookworm   Debian's prometheus, entrypoint and paths as prom/prometheus
# Grafana is not packaged by Debian: there is no stand-in for it. Needs root, debootstrap and dockerd.
set -euo pipefail

if ! docker image inspect localbase:bookworm >/dev/null 2>&1; then
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$(mktemp -d /tmp/localbase.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "debootstrap bookworm from $mirror (about 80 s)"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >/dev/null
    # HTTPS from these machines goes through a proxy whose chain ends in a locally added CA
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
    chroot "$rootfs" update-ca-certificates >/dev/null
    cp -r /etc/apt/sources.list.d/. "$rootfs/etc/apt/sources.list.d/"
    [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$rootfs/etc/apt/sources.list"
    cp -r /etc/apt/apt.conf.d/. "$rootfs/etc/apt/apt.conf.d/"
    rm -f "$rootfs"/etc/apt/apt.conf.d/*packagekit* "$rootfs"/etc/apt/apt.conf.d/*appstream*
    tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' -c 'ENV LANG=C.UTF-8' - localbase:bookworm
fi

build() {  # build IMAGE from the Dockerfile on stdin unless it exists
    if docker image inspect "$1" >/dev/null 2>&1; then echo "image $1 exists"; cat >/dev/null; return; fi
    docker build -q -t "$1" - >/dev/null && echo "image $1 built"
}

build localpython:3.11-slim <<'DOCKERFILE'
FROM localbase:bookworm
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip \
 && rm -rf /var/lib/apt/lists/* \
 && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
 && ln -s /usr/bin/python3 /usr/local/bin/python
ENV LANG=C.UTF-8
CMD ["python3"]
DOCKERFILE

build localredis:bookworm <<'DOCKERFILE'
FROM localbase:bookworm
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
CMD ["redis-server"]
DOCKERFILE

build localprometheus:bookworm <<'DOCKERFILE'
FROM localbase:bookworm
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
DOCKERFILE
