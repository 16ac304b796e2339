#!/usr/bin/env bash
# Runs every pg_elt test on a throwaway cluster: the pg_regress suites
# (sql/ + expected/, order in test/regress_schedule) and the process-level
# tests (test/process/*.sh). Ends with "N passed, N failed".
#
#   test/run.sh                    everything
#   test/run.sh -k PATTERN         only tests whose name matches PATTERN
#   ELT_REGRESS_ONLY=1 test/run.sh only the pg_regress suites
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PATTERN=
[ "${1:-}" = -k ] && PATTERN=${2:-}

test/deps.sh || { echo "0 passed, 1 failed"; exit 1; }
. test/lib/cluster.sh

echo "== build"
make -s WERROR=1 PG_CONFIG="$PG_CONFIG" >/tmp/pg_elt_build.$$ 2>&1 ||
	{ cat /tmp/pg_elt_build.$$; rm -f /tmp/pg_elt_build.$$; echo "0 passed, 1 failed"; exit 1; }
rm -f /tmp/pg_elt_build.$$

cluster_start || { echo "0 passed, 1 failed"; exit 1; }
echo "== cluster on port $PGPORT (pid $CLUSTER_PID)"

passed=0
failed=0
failures=()
record() {	# record NAME STATUS
	if [ "$2" = 0 ]; then
		passed=$((passed + 1)); echo "ok     $1"
	else
		failed=$((failed + 1)); failures+=("$1"); echo "FAILED $1"
	fi
}

# --- pg_regress suites -------------------------------------------------------
regress_tests=()
for t in $(cat test/regress_schedule); do
	[ -z "$PATTERN" ] || [[ $t == *$PATTERN* ]] && regress_tests+=("$t")
done
if [ ${#regress_tests[@]} -gt 0 ]; then
	echo "== pg_regress: ${#regress_tests[@]} suites"
	outdir=$CLUSTER_DIR/regress
	mkdir -p "$outdir"
	"$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress" --bindir="$PGBIN" \
		--inputdir=. --outputdir="$outdir" --host="$PGHOST" --port="$PGPORT" \
		--user=postgres --dbname=contrib_regression --load-extension=pg_elt \
		"${regress_tests[@]}" >"$outdir/out.txt" 2>&1
	for t in "${regress_tests[@]}"; do
		if grep -Eq "^(test| ) +$t +\.\.\. ok" "$outdir/out.txt"; then
			record "regress/$t" 0
		else
			record "regress/$t" 1
		fi
	done
	if [ -s "$outdir/regression.diffs" ]; then
		echo "---- regression.diffs"
		cat "$outdir/regression.diffs"
		echo "----"
	elif ! grep -q "tests passed" "$outdir/out.txt"; then
		cat "$outdir/out.txt"
	fi
fi

# --- process-level tests -----------------------------------------------------
export ELT_ROOT=$ROOT
for t in test/process/*.sh; do
	[ "${ELT_REGRESS_ONLY:-0}" = 1 ] && break
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	[ -z "$PATTERN" ] || [[ $name == *$PATTERN* ]] || continue
	log=$CLUSTER_DIR/$name.log
	timeout 900 bash "$t" >"$log" 2>&1
	status=$?
	record "process/$name" $status
	if [ $status != 0 ]; then
		echo "---- output of $name"; tail -n 60 "$log"; echo "----"
	fi
done

if [ $failed -gt 0 ]; then
	echo "---- server log (tail)"
	server_log_tail 60
	echo "----"
	echo "failed: ${failures[*]}"
fi
if [ $((passed + failed)) -eq 0 ]; then
	echo "no test matches \"$PATTERN\""
	failed=1
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
