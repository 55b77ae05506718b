#!/usr/bin/env bash
# Regenerates completions/ and man/ from the clap definitions. The test suite fails when the
# committed files differ from what the code generates, so run this after changing the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/paragon-admin"
rm -rf completions man
"$bin" completions --dir completions
"$bin" man --dir man
