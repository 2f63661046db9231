#!/usr/bin/env bash
# Fails when a C++ source is not formatted as .clang-format says (exit 77,
# skipped, without clang-format). Usage: check_format.sh REPO
set -euo pipefail
cd "$1"
command -v clang-format >/dev/null || { echo "clang-format not installed: skipped"; exit 77; }
files=$(git ls-files '*.cc' '*.h' 2>/dev/null || find common daemon client tests bench -name '*.cc' -o -name '*.h')
clang-format --dry-run --Werror $files
echo "clang-format: $(wc -w <<<"$files") files formatted"
