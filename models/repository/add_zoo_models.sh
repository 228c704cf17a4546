#!/usr/bin/env bash
# Adds the ImageNet-shape zoo models exported by `make zoo` (ZOO_DIR/<name>.onnx, <name>.json,
# <name>.labels.txt) to a model repository, one folder each in Triton's layout:
#
#   REPO_DIR/<name>/config.pbtxt      RGB, shorter side 256 then centre crop (224, or 227 for alexnet), ImageNet
#                                     mean/std, max_batch_size 32, preferred batch sizes 2, 4, 8, 16 and 32
#                                     (AlexNet, ZFNet) or 8 and 32 (VGG: each plan size costs its activations)
#   REPO_DIR/<name>/1/model.onnx      a symbolic link to ZOO_DIR/<name>.onnx (--copy: a copy; VGG is 0.5 GB)
#   REPO_DIR/<name>/labels.txt        a copy of ZOO_DIR/<name>.labels.txt
#
# Usage: models/repository/add_zoo_models.sh [--copy] [--zoo-dir DIR] [--with-default] [--ensemble] REPO_DIR [NAME...]
#   NAME...          zoo models to add (default: every exported model with a 3-channel input)
#   --ensemble       also write REPO_DIR/imagenet_ensemble: SOFT_MEAN of alexnet (227x227), zfnet and vgg16
#                    (224x224), which must be among the models added (random weights: for throughput, not accuracy)
#   --zoo-dir DIR    where `make zoo` wrote the models (default: $ZOO_DIR or ~/.cache/cnnserve/zoo)
#   --with-default   also link the default repository's models (models/repository/*/) into REPO_DIR, so that
#                    one --model-repository serves both
#   --copy           copy model.onnx instead of linking it
# Idempotent: re-running replaces the configs and links. Makefile target (ZOO_REPOSITORY ?= $(BUILD)/zoo-repository):
#   zoo-repository: zoo
#   	models/repository/add_zoo_models.sh --zoo-dir $(ZOO_DIR) --with-default $(ZOO_REPOSITORY)
# then: build/bin/cnnserve --model-repository build/zoo-repository
# Memory: every model loads with a plan per preferred batch size, plus 1 and 32, per instance (AlexNet: 830 MB
# resident with six plans, 755 MB with three); all eight ImageNet-shape models together need several GB (weights
# alone: 3.3 GB). Name the ones you need.
# Why more plan sizes for AlexNet/ZFNet: a batch runs on the smallest plan that holds it, padded with zero rows.
# With plans 1/8/32 only, four clients each sending one JPEG made batches of 2-3 padded to 8 (two 57 ms runs per
# four images): 33 images/s, below one client's 55. With 2/4/16 as well: 90 images/s at concurrency 4, 95 at 8.
set -euo pipefail

die() { echo "add_zoo_models.sh: $*" >&2; exit 1; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
zoo_dir=${ZOO_DIR:-$HOME/.cache/cnnserve/zoo}
copy=0
with_default=0
ensemble=0
repo=""
names=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --copy) copy=1 ;;
    --with-default) with_default=1 ;;
    --ensemble) ensemble=1 ;;
    --zoo-dir) [[ $# -ge 2 ]] || die "--zoo-dir needs a value"; zoo_dir=$2; shift ;;
    --zoo-dir=*) zoo_dir=${1#--zoo-dir=} ;;
    -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) if [[ -z "$repo" ]]; then repo=$1; else names+=("$1"); fi ;;
  esac
  shift
done
[[ -n "$repo" ]] || die "usage: add_zoo_models.sh [--copy] [--zoo-dir DIR] [--with-default] [--ensemble] REPO_DIR [NAME...]"
[[ -d "$zoo_dir" ]] || die "zoo folder $zoo_dir does not exist: run 'make zoo' first"
zoo_dir=$(cd "$zoo_dir" && pwd)

# "C H W" of a zoo model's input, from its <name>.json (written by models/zoo/export.py).
input_shape() {
  /usr/bin/python3 -c 'import json, sys; print(*json.load(open(sys.argv[1]))["input_shape"])' "$1"
}

if [[ ${#names[@]} -eq 0 ]]; then
  for json in "$zoo_dir"/*.json; do
    [[ -e "$json" ]] || continue
    name=$(basename "$json" .json)
    [[ -f "$zoo_dir/$name.onnx" ]] || continue
    read -r c _ _ < <(input_shape "$json")
    [[ "$c" == 3 ]] && names+=("$name")
  done
  [[ ${#names[@]} -gt 0 ]] || die "no ImageNet-shape models in $zoo_dir: run 'make zoo' first"
fi

mkdir -p "$repo"
for name in "${names[@]}"; do
  [[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad model name '$name'"
  onnx="$zoo_dir/$name.onnx"
  json="$zoo_dir/$name.json"
  labels="$zoo_dir/$name.labels.txt"
  for f in "$onnx" "$json" "$labels"; do
    [[ -f "$f" ]] || die "$f is missing: run 'make zoo' (ZOO_MODELS=$name) first"
  done
  read -r c h w < <(input_shape "$json")
  [[ "$c" == 3 ]] || die "$name has $c input channels; only ImageNet-shape (3-channel) models are supported"
  dir="$repo/$name"
  mkdir -p "$dir/1"
  case "$name" in
    vgg*) preferred="8, 32" ;;
    *) preferred="2, 4, 8, 16, 32" ;;
  esac
  tmp="$dir/config.pbtxt.tmp.$$"
  cat > "$tmp" <<EOF
# Written by models/repository/add_zoo_models.sh from $json (zoo model, seeded random weights).
name: "$name"
platform: "onnx"
max_batch_size: 32
input {
  dims: [$c, $h, $w]
}
preprocess {
  color: RGB
  resize: SHORTER_SIDE_CROP   # shorter side to 256, then the centre ${h}x${w}
  resize_shorter_side: 256
  scale: 0.0039215688593685627   # 1/255
  mean: [0.485, 0.456, 0.406]    # ImageNet, R G B
  std: [0.229, 0.224, 0.225]
}
dynamic_batching {
  max_queue_delay_us: 2000
  preferred_batch_size: [$preferred]
}
instance_group {
  count: 1
}
labels: "labels.txt"
description: "zoo $name, ${c}x${h}x${w}, ImageNet-shape with random weights (make zoo)"
EOF
  mv -f "$tmp" "$dir/config.pbtxt"
  rm -f "$dir/1/model.onnx"
  if [[ $copy == 1 ]]; then
    cp "$onnx" "$dir/1/model.onnx"
  else
    ln -s "$onnx" "$dir/1/model.onnx"
  fi
  cp "$labels" "$dir/labels.txt"
  echo "added $name (${c}x${h}x${w}) to $repo"
done

if [[ $with_default == 1 ]]; then
  for model in "$script_dir"/*/; do
    model=${model%/}
    [[ -f "$model/config.pbtxt" ]] || continue
    name=$(basename "$model")
    if [[ -e "$repo/$name" && ! -L "$repo/$name" ]]; then
      echo "kept $repo/$name (not a link)"
      continue
    fi
    ln -sfn "$model" "$repo/$name"
    echo "linked $name from the default repository"
  done
fi

if [[ $ensemble == 1 ]]; then
  for member in alexnet zfnet vgg16; do
    [[ -f "$repo/$member/config.pbtxt" ]] || die "--ensemble needs $member in $repo (add it: NAME... alexnet zfnet vgg16)"
  done
  mkdir -p "$repo/imagenet_ensemble"
  cp "$repo/alexnet/labels.txt" "$repo/imagenet_ensemble/labels.txt"
  cat > "$repo/imagenet_ensemble/config.pbtxt" <<EOF
# Written by models/repository/add_zoo_models.sh --ensemble: three zoo models with two preprocessing configs
# (alexnet crops 227x227, zfnet and vgg16 224x224) behind one name. Random weights: for throughput only.
name: "imagenet_ensemble"
platform: "ensemble"
max_batch_size: 32
ensemble {
  members { model: "alexnet" }
  members { model: "zfnet" }
  members { model: "vgg16" }
  strategy: SOFT_MEAN
  quorum: 3
  member_timeout_ms: 60000
}
labels: "labels.txt"
description: "SOFT_MEAN of the zoo's alexnet, zfnet and vgg16 (random weights)"
EOF
  echo "added imagenet_ensemble (alexnet + zfnet + vgg16) to $repo"
fi
