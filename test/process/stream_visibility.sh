#!/usr/bin/env bash
# A commit is decodable as soon as its WAL record is flushed, a moment before
# the committing backend makes it visible to other snapshots; the worker
# reads the rows it stages by key with a new snapshot. This test holds a
# commit in that moment for seconds: with synchronous_standby_names naming
# a standby that does not exist, the committing backend flushes its commit
# record, then waits for the standby before it becomes visible. The worker
# (whose own commits are made local for this, else they would wait for the
# standby too) must wait for it, not settle the key as "no such row" (which
# lost the change for good), and deliver the row once the commit is visible.
. "$ELT_ROOT/test/lib/streaming.sh"
stream_setup

stream_text_table held

# the worker connects as the bootstrap superuser: restart it with that
# role's setting; the writer is another role, whose commits do wait
q "ALTER ROLE postgres SET synchronous_commit = local" >/dev/null
q "CREATE ROLE held_writer LOGIN" >/dev/null
q "GRANT INSERT ON public.held TO held_writer" >/dev/null
old_pid=$(q "SELECT worker_pid FROM elt.worker_status LIMIT 1")
q "SELECT pg_terminate_backend($old_pid)" >/dev/null
poll_until 30 "SELECT worker_pid IS NOT NULL AND worker_pid <> $old_pid AND worker_state = 'streaming'
	FROM elt.worker_status LIMIT 1" || fail "the worker did not come back"
check "the new worker commits locally" \
	"$(q "SELECT setting FROM pg_db_role_setting, unnest(setconfig) setting WHERE setrole = 'postgres'::regrole")" \
	synchronous_commit=local

q "ALTER SYSTEM SET synchronous_standby_names = 'nobody'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
poll_until 10 "SELECT current_setting('synchronous_standby_names') = 'nobody'" || fail "setting not in force"
psql -XAtq -U held_writer -c "INSERT INTO public.held VALUES (1, 'held at commit')" >/dev/null 2>&1 &
writer=$!
poll_until 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE usename = 'held_writer' AND wait_event = 'SyncRep')" ||
	fail "the INSERT is not waiting for the standby"
# the worker decodes the commit (its record is flushed) while nobody sees the row
poll_until 20 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity a JOIN elt.worker_status w ON a.pid = w.worker_pid
	WHERE a.wait_event = 'transactionid')" || { sleep 3; echo "# the worker did not wait for the commit"; }
check "the row is not visible while its commit waits" "$(q "SELECT count(*) FROM public.held")" 0

q "ALTER SYSTEM RESET synchronous_standby_names" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait "$writer" || fail "the INSERT failed"
wait_settled 30 || { q "SELECT * FROM elt.worker_status"; fail "not settled after the commit became visible"; }
check "the held row reached the destination" \
	"$(mock_holds "SELECT jsonb_build_object('k', id::text, 'v', v) FROM public.held" held)" 0
check "and is confirmed in the bookkeeping" \
	"$(q "SELECT state FROM elt.sync_records WHERE sync = 'held_rt'")" confirmed
q "ALTER ROLE postgres RESET synchronous_commit" >/dev/null
