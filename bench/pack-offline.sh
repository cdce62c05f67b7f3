#!/usr/bin/env bash
# Packs what the benchmarks need on a linux-x64 machine that has no network and no Node.js (a GPU box, say):
# this machine's node binary and the production modules, trimmed to linux-x64, with tsx to run bench/*.ts.
# The repository itself travels beside it. About 40 MB:
#
#   bash bench/pack-offline.sh                  → .offline/runtime.tar.xz
#   (there, in the repository's root)  tar xJf .offline/runtime.tar.xz && PATH=$PWD/.offline/bin:$PATH npm_config_offline=true \
#       node node_modules/tsx/dist/cli.mjs bench/gpu.ts --out <dir>
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -sm)" = "Linux x86_64" ] || { echo "pack-offline: packs linux-x64 binaries; this is $(uname -sm)" >&2; exit 1; }
[ -d node_modules/onnxruntime-node ] || { echo "pack-offline: run npm ci first" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/.offline/bin" "$stage/node_modules"
cp "$(command -v node)" "$stage/.offline/bin/node"
# The production dependency tree, and tsx with the esbuild it runs.
mapfile -t modules < <(npm ls --omit=dev --all --parseable 2>/dev/null | sed -n "s#^$PWD/node_modules/##p" | sort -u)
for m in "${modules[@]}" tsx esbuild @esbuild/linux-x64; do
  mkdir -p "$stage/node_modules/$(dirname "$m")"
  cp -r "node_modules/$m" "$stage/node_modules/$m"
done
# onnxruntime-node ships every platform's library; one is needed.
find "$stage/node_modules/onnxruntime-node/bin/napi-v6" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} +
find "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux" -mindepth 1 -maxdepth 1 ! -name x64 -exec rm -rf {} +
mkdir -p .offline
tar -C "$stage" -cf - .offline node_modules | xz -T0 -6 > .offline/runtime.tar.xz.tmp
mv .offline/runtime.tar.xz.tmp .offline/runtime.tar.xz
echo "wrote .offline/runtime.tar.xz ($(du -h .offline/runtime.tar.xz | cut -f1))"
