#!/usr/bin/env bash
# Before each read of the slot the worker flushes the WAL inserted so far.
# When the last record ends exactly at the end of a WAL page, the position
# where the next record will start lies past the next page's header, which
# no flush can reach: flushing up to it failed ("xlog flush request ... is
# not satisfied") and the worker's step with it. This test ends the WAL at a
# page boundary again and again (a non-transactional logical message of the
# size that fills the page) while the worker reads, and checks that the
# worker never fails and still delivers. Without the fix, about one read in
# three after such a message failed.
. "$ELT_ROOT/test/lib/streaming.sh"
stream_setup

stream_text_table pages

# Emits one message whose record ends exactly at the end of the current WAL
# page (moving to a fresh page first if too little room is left), and
# returns where the next record would start within its page: 24 (or 40 at
# a segment's start) when nothing was written after it.
q "CREATE FUNCTION public.wal_to_page_end() RETURNS int LANGUAGE plpgsql AS \$\$
DECLARE
	room int;
	m int;
BEGIN
	FOR i IN 1..3 LOOP
		room := 8192 - ((pg_current_wal_insert_lsn() - '0/0'::pg_lsn) % 8192)::int;
		-- the record: its header 24, the main data's header (5, or 2 for at
		-- most 255 bytes), the main data (xl_logical_message 24, prefix 'p'
		-- and its NUL 2, the message m)
		IF room - 29 > 255 THEN
			m := room - 55;
		ELSIF room - 26 <= 255 AND room >= 52 THEN
			m := room - 52;
		ELSE
			m := -1;
		END IF;
		IF m >= 0 THEN
			PERFORM pg_logical_emit_message(false, 'p', repeat('x', m));
			RETURN ((pg_current_wal_insert_lsn() - '0/0'::pg_lsn) % 8192)::int;
		END IF;
		PERFORM pg_logical_emit_message(false, 'p', repeat('x', 300));
	END LOOP;
	RETURN -1;
END \$\$" >/dev/null

errors_before=$(grep -c "xlog flush request" "$CLUSTER_DIR/server.log" || true)
at_boundary=0
for i in $(seq 1 10); do
	offset=$(q "SELECT public.wal_to_page_end()")
	{ [ "$offset" = 24 ] || [ "$offset" = 40 ]; } && at_boundary=$((at_boundary + 1))
	sleep 1		# five naps of the worker: it reads the slot after each
done
[ "$at_boundary" -ge 5 ] || fail "the WAL ended at a page boundary only $at_boundary times of 10"
echo "ok - the WAL ended at a page boundary $at_boundary times of 10"
check "the worker reports no error" "$(q "SELECT coalesce(string_agg(last_error, '; '), '') FROM elt.worker_status")" ""
check "the server log has no failed WAL flush" \
	"$(( $(grep -c "xlog flush request" "$CLUSTER_DIR/server.log" || true) - errors_before ))" 0

q "INSERT INTO public.pages VALUES (1, 'after the page boundaries')" >/dev/null
wait_settled 30 || { q "SELECT * FROM elt.worker_status"; fail "not settled after the insert"; }
check "the row reached the destination" \
	"$(mock_holds "SELECT jsonb_build_object('k', id::text, 'v', v) FROM public.pages" pages)" 0
