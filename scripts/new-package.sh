#!/usr/bin/env bash
# Scaffolds a workspace package: scripts/new-package.sh <dir> <name> "<description>"
set -euo pipefail
dir=$1; name=$2; desc=$3
mkdir -p "$dir/src" "$dir/test"
rel=$(realpath --relative-to="$dir" tsconfig.base.json)
cat > "$dir/package.json" <<JSON
{
  "name": "@fenceline/$name",
  "version": "0.1.0",
  "private": true,
  "description": "$desc",
  "type": "module",
  "exports": {
    ".": { "source": "./src/index.ts", "types": "./dist/index.d.ts", "default": "./dist/index.js" }
  },
  "scripts": {
    "build": "tsc -p tsconfig.json",
    "typecheck": "tsc -p tsconfig.json --noEmit"
  }
}
JSON
cat > "$dir/tsconfig.json" <<JSON
{
  "extends": "$rel",
  "compilerOptions": { "rootDir": "src", "outDir": "dist" },
  "include": ["src"]
}
JSON
