#!/usr/bin/env bash
# The project's api.proto against the reference CRI v1 API, definition by definition, with the
# cri-compat tool of the shared folder beside the checkout. Exits 77 (skipped) without it.
set -euo pipefail
source_dir=$1
tool=$source_dir/../shared/tools/cri-compat
if [ ! -x "$tool" ]; then
  echo "cri_compat: skipped: $tool is missing (the shared folder with the reference CRI API" \
       "and its wire-compatibility check belongs beside this checkout)" >&2
  exit 77
fi
exec "$tool" "$source_dir/api/cri/api.proto"
