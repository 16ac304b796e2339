#!/usr/bin/env bash
# Builds the benchmark helpers that are plain C programs (no PGXS):
# bench/bare_client, the reference client of benchmark B4a.
set -euo pipefail
cd "$(dirname "$0")"
cc -O2 -Wall -Wextra -Werror -o bare_client bare_client.c -lcurl
echo "built bench/bare_client"
