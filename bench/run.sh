#!/usr/bin/env bash
# Runs the benchmarks side by side on one throwaway cluster and prints the
# ratios that docs/benchmarks.md reports.
#   bench/run.sh            all
#   bench/run.sh models     only B1-B3
set -euo pipefail
cd "$(dirname "$0")/.."
ELT_BENCH_DEPS=1 test/deps.sh
make -s PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >/dev/null
. test/lib/cluster.sh
cluster_start "shared_buffers = 1GB" "max_locks_per_transaction = 256" \
	"checkpoint_timeout = 30min" "max_wal_size = 8GB"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), PostgreSQL $(psql -XAtc 'SHOW server_version')"
what=${1:-all}
if [ "$what" = all ] || [ "$what" = models ]; then
	bash bench/models.sh
fi
for extra in bench/activation.sh bench/streaming.sh; do
	if [ -f "$extra" ] && { [ "$what" = all ] || [ "$what" = "$(basename "$extra" .sh)" ]; }; then
		bash "$extra"
	fi
done
