#!/usr/bin/env bash
# stickers-prepare (the init image): fill the data volume with what the service serves, through the
# Makefile's own targets, so a change of the default model or of its config is followed without editing
# this script. Idempotent: the catalogue is rebuilt only when its pins change, the model only when its
# config or code changes (the Makefile's model key), the index and ONNX file only when missing.
#
#   $STICKERS_DATA/catalog/default, runs/default-<key>/best, index/default-<key>   (the Makefile's layout)
#   $STICKERS_DATA/npm, models, features                                         (caches)
#   $STICKERS_DATA/serving/{catalog,model,index} -> the above                      (what the service reads)
#
# STICKERS_PREPARE_TARGETS overrides the make targets (default "index onnx").
set -euo pipefail
DATA=${STICKERS_DATA:-/data}
SRC=${STICKERS_SRC:-/src}
read -r -a targets <<< "${STICKERS_PREPARE_TARGETS:-index onnx}"
make_args=(-C "$SRC" --no-print-directory VENV=/opt/venv STICKERS_CACHE_DIR="$DATA")

say() { echo "[prepare $(date -u +%H:%M:%S)] $*"; }
value() { make -s "${make_args[@]}" --eval 'print-%: ; @echo $($*)' "print-$1"; }
# replace a link atomically: a replica starting meanwhile sees the old target or the new one, never none
link() {
    local name=$1 target
    target=$(realpath --relative-to="$DATA/serving" "$2")
    ln -sfn "$target" "$DATA/serving/.$name.new"
    mv -Tf "$DATA/serving/.$name.new" "$DATA/serving/$name"
    say "serving/$name -> $target"
}

test -w "$DATA" || { say "cannot write $DATA (uid $(id -u)); mount a volume owned by it"; exit 1; }
started=$(date +%s)
say "make ${targets[*]} into $DATA: catalogue (npm), default model (trained on the catalogue once per model" \
    "version: minutes to an hour on a few CPU cores), index, ONNX query encoder. Progress follows."
# progress bars redraw with carriage returns, which container logs only show at the next newline; tr
# writing to a pipe would buffer 4 KB at a time (minutes of progress), so it is made line-buffered
make "${make_args[@]}" "${targets[@]}" 2>&1 | stdbuf -oL tr '\r' '\n'

mkdir -p "$DATA/serving"
link catalog "$(value CATALOG)"
link model "$(value MODEL)"
link index "$(value INDEX)"
say "ready in $(( $(date +%s) - started )) s: the service can start"
