#!/usr/bin/env bash
# The SQL examples of the documentation run as written. Every ```sql block
# of README.md and docs/*.md (in that order) is an example a user would
# type: this test runs them, each document's blocks in order, one
# psql -v ON_ERROR_STOP=1 session per block, and fails naming the document
# and line of the first block (and statement) that raises an error.
#
# - Each document gets a fresh database of its own, which is also
#   cron.database_name and elt.database (ALTER SYSTEM, then a restart: the
#   docs schedule with pg_cron "in cron.database_name" and stream from
#   elt.database). ALTER SYSTEM RESET ALL comes first, so what one document
#   sets (install.md's elt.http_allowed_networks) does not reach the next.
# - The cluster is this test's own: its server runs with CRM_TOKEN in its
#   environment, as the docs' destinations (secret => 'env:CRM_TOKEN')
#   require, and with elt.http_allowed_networks = '127.0.0.1/32'.
# - One substitution: the docs' example API host https://api.crm.example
#   (reserved .example domain) is replaced by the mock destination's URL
#   (test/mock, on 127.0.0.1), so the examples' requests really go out.
# - A prelude per document creates what the document assumes exists (see
#   prelude() below): the extension (except for README.md, whose example
#   creates it), the demo's raw data (test/demo/raw_data.sql) for README.md
#   and models.md, analytics.active_customers for activation.md,
#   public.contacts for streaming.md, the role analyst for install.md.
# - Signatures and output are shown in plain ``` fences, not ```sql. A ```sql
#   block that cannot run in a test cluster is skipped only when the line
#   just before its fence is
#       <!-- docs-test: skip (why) -->
#   and the skip is printed with its reason. A marker that is not followed
#   by a ```sql fence fails the test.
# - After the blocks, a few checks that the examples did what they say:
#   the model runs of every document succeeded (README.md's and models.md's
#   built models), and activation.md's requests reached the mock with the
#   token from the server's environment.
set -euo pipefail
. "$ELT_ROOT/test/lib/cluster.sh"
. "$ELT_ROOT/test/mock/mock.sh"

fail() { echo "not ok - $*"; exit 1; }
check() { if [ "$2" = "$3" ]; then echo "ok - $1"; else fail "$1: got '$2', expected '$3'"; fi; }

DOC_TOKEN=docs-example-token
export CRM_TOKEN=$DOC_TOKEN
cluster_start "elt.http_allowed_networks = '127.0.0.1/32'"
# CRM_TOKEN stays exported: cluster_restart starts the server from this shell
mock_start
trap 'mock_stop; cluster_stop' EXIT
API_HOST=https://api.crm.example
WORK=$CLUSTER_DIR/docs_examples
mkdir -p "$WORK"
echo "# cluster pid $CLUSTER_PID, mock $MOCK_URL replaces $API_HOST"

# prelude DOC: SQL that creates what DOC's examples assume exists.
prelude() {
	case $1 in
	README.md)
		cat "$ELT_ROOT/test/demo/raw_data.sql" ;;
	docs/models.md)
		echo "CREATE EXTENSION pg_elt;"
		cat "$ELT_ROOT/test/demo/raw_data.sql" ;;
	docs/activation.md)
		cat <<'SQL'
CREATE EXTENSION pg_elt;
CREATE SCHEMA analytics;
CREATE TABLE analytics.active_customers (customer_id int PRIMARY KEY, email text, plan text);
INSERT INTO analytics.active_customers
	SELECT g, CASE WHEN g = 7 THEN 'no-email' ELSE 'Customer' || g || '@Example.com' END,
		   (ARRAY['free', 'pro', 'enterprise'])[1 + g % 3]
	FROM generate_series(1, 20) g;
SQL
		;;
	docs/streaming.md)
		cat <<'SQL'
CREATE EXTENSION pg_elt;
CREATE TABLE public.contacts (id int PRIMARY KEY, email text, name text);
INSERT INTO public.contacts SELECT g, 'contact' || g || '@example.com', 'Contact ' || g
	FROM generate_series(1, 10) g;
SQL
		;;
	docs/install.md)
		echo "CREATE EXTENSION pg_elt;"
		echo "CREATE ROLE analyst;" ;;
	*)
		echo "CREATE EXTENSION pg_elt;" ;;
	esac
}

# extract DOC DIR: writes each ```sql block of DOC (a path in the repository)
# to DIR/<line>.sql, <line> being the line of its opening fence, and prints
# one line per block: "<line> run" or "<line> skip <reason>". Fails on a skip marker without a ```sql fence
# after it, an indented ```sql fence and an unterminated block.
extract() {
	awk -v out="$2" -v doc="$1" '
	BEGIN { marker = "^<!-- docs-test: skip \\(.+\\) -->$" }
	inb && /^[[:space:]]*```/ { inb = 0; close(file); prev = $0; next }
	inb { print > file; next }
	/^```sql[[:space:]]*$/ {
		inb = 1; start = NR; file = out "/" NR ".sql"; printf "" > file
		if (prev ~ marker) {
			reason = prev; sub(/^<!-- docs-test: skip \(/, "", reason); sub(/\) -->$/, "", reason)
			print NR " skip " reason
		} else
			print NR " run"
		prev = $0; next
	}
	/^[[:space:]]+```sql/ { printf "%s:%d: indented ```sql fence (this test runs only unindented ones)\n", doc, NR > "/dev/stderr"; bad = 1 }
	prev ~ marker { printf "%s:%d: skip marker not followed by a ```sql fence\n", doc, NR - 1 > "/dev/stderr"; bad = 1 }
	{ prev = $0 }
	END {
		if (prev ~ marker && !inb) { printf "%s:%d: skip marker at the end\n", doc, NR > "/dev/stderr"; bad = 1 }
		if (inb) { printf "%s:%d: ```sql block not closed\n", doc, start > "/dev/stderr"; bad = 1 }
		exit bad
	}' "$ELT_ROOT/$1"
}

blocks_run=0
blocks_skipped=0
# run_doc DOC: runs DOC's ```sql blocks in a fresh database.
run_doc() {
	local doc=$1 db dir manifest line what reason out
	db=docs_$(basename "$doc" .md | tr 'A-Z.-' 'a-z__')
	dir=$WORK/$db
	mkdir -p "$dir"
	manifest=$(extract "$doc" "$dir") || fail "$doc: malformed docs-test markup (above)"
	[ -n "$manifest" ] || return 0

	psql -XAtq -v ON_ERROR_STOP=1 -d postgres >/dev/null <<SQL || fail "$doc: could not prepare database $db"
ALTER SYSTEM RESET ALL;
ALTER SYSTEM SET cron.database_name = '$db';
ALTER SYSTEM SET elt.database = '$db';
CREATE DATABASE $db;
SQL
	cluster_restart
	mock_reset >/dev/null
	prelude "$doc" | psql -XAtq -v ON_ERROR_STOP=1 -d "$db" >"$dir/prelude.out" 2>&1 ||
		{ cat "$dir/prelude.out"; fail "$doc: the test's prelude failed"; }

	while read -r line what reason; do
		if [ "$what" = skip ]; then
			echo "skip   $doc:$line ($reason)"
			blocks_skipped=$((blocks_skipped + 1))
			continue
		fi
		sed "s#$API_HOST#$MOCK_URL#g" "$dir/$line.sql" >"$dir/$line.run.sql"
		if ! out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$dir/$line.run.sql" 2>&1); then
			# psql:FILE:N: names the block's line N; say the document's line
			awk -v f="psql:$dir/$line.run.sql:" -v doc="$doc" -v start="$line" '{
				if (index($0, f) == 1) {
					rest = substr($0, length(f) + 1); n = rest + 0; sub(/^[0-9]+:/, "", rest)
					$0 = doc ":" start + n ":" rest
				}
				print
			}' <<<"$out" | tail -n 40
			fail "$doc:$line: the \`\`\`sql block starting at line $line failed (database $db)"
		fi
		echo "ok - $doc:$line"
		blocks_run=$((blocks_run + 1))
	done <<<"$manifest"

	after_doc "$doc" "$db"
}

# after_doc DOC DB: checks that DOC's examples did what the document says.
# An elt.run() whose models fail raises no error, so for every document:
# every model run of its examples succeeded.
after_doc() {
	local runs=0
	if [ "$(psql -XAtq -d "$2" -c "SELECT to_regclass('elt.model_runs') IS NOT NULL")" = t ]; then
		runs=$(psql -XAtq -d "$2" -c "SELECT count(*) FROM elt.model_runs")
		[ "$runs" = 0 ] || check "$1: each of its $runs model runs succeeded" \
			"$(psql -XAtq -d "$2" -c "SELECT count(*) FILTER (WHERE status <> 'success') FROM elt.model_runs")" 0
	fi
	case $1 in
	README.md | docs/models.md)
		[ "$runs" -gt 0 ] || fail "$1: its examples built no model"
		;;
	docs/activation.md)
		local sent
		sent=$(psql -XAtq -d "$2" -c "SELECT count(*) FROM analytics.active_customers WHERE email LIKE '%@%'")
		check "activation.md: each valid row reached the mock once" \
			"$(mock_count)" "$sent"
		check "activation.md: with the token from the server's environment" \
			"$(mock_requests |
				jq --arg t "Bearer $DOC_TOKEN" '[.[] | select(.headers.Authorization == $t)] | length')" "$sent"
		;;
	esac
}

docs=(README.md)
for f in "$ELT_ROOT"/docs/*.md; do docs+=("docs/$(basename "$f")"); done
for doc in "${docs[@]}"; do
	run_doc "$doc"
done
[ $blocks_run -gt 0 ] || fail "no \`\`\`sql block found"
echo "all ok: $blocks_run blocks ran, $blocks_skipped skipped, in ${#docs[@]} documents"
