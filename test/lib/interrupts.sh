# Timing of interrupts, measured inside the server: how long after a
# pg_cancel_backend() or a statement_timeout a backend's statement really
# ends. Both poll pg_stat_activity every 5 ms from one session, so neither
# psql's start-up nor the client's wait is counted. Source it from a test
# (needs the PG* variables of test/lib/cluster.sh).

# cancel_and_time PID: calls pg_cancel_backend(PID) and prints the
# milliseconds from its return until PID has no active statement any more
# (-1 if it still has one after 30 s).
cancel_and_time() {
	psql -XAtq -v ON_ERROR_STOP=1 -v target="$1" <<'SQL'
CREATE FUNCTION pg_temp.cancel_and_time(target int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
BEGIN
	IF NOT pg_cancel_backend(target) THEN
		RAISE EXCEPTION 'pg_cancel_backend(%) returned false', target;
	END IF;
	t0 := clock_timestamp();
	LOOP
		PERFORM pg_stat_clear_snapshot();
		EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = target AND state = 'active');
		IF clock_timestamp() - t0 > interval '30 s' THEN
			RETURN -1;
		END IF;
		PERFORM pg_sleep(0.005);
	END LOOP;
	RETURN round(extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;
SELECT pg_temp.cancel_and_time(:target);
SQL
}

# statement_ms APPNAME PATTERN: waits (up to 30 s) for the session named
# APPNAME to run a statement whose text matches the LIKE pattern PATTERN,
# then prints the milliseconds from that statement's start (query_start) to
# its end (the session no longer active in it); -1 if it did not show up or
# did not end within 60 s.
statement_ms() {
	psql -XAtq -v ON_ERROR_STOP=1 -v app="$1" -v pattern="$2" <<'SQL'
CREATE FUNCTION pg_temp.statement_ms(app text, pattern text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	target int;
	started timestamptz;
BEGIN
	LOOP
		PERFORM pg_stat_clear_snapshot();
		SELECT pid, query_start INTO target, started FROM pg_stat_activity
		WHERE application_name = app AND state = 'active' AND query LIKE pattern;
		EXIT WHEN FOUND;
		IF clock_timestamp() - t0 > interval '30 s' THEN
			RETURN -1;
		END IF;
		PERFORM pg_sleep(0.005);
	END LOOP;
	LOOP
		PERFORM pg_stat_clear_snapshot();
		EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity
			WHERE pid = target AND state = 'active' AND query_start = started);
		IF clock_timestamp() - started > interval '60 s' THEN
			RETURN -1;
		END IF;
		PERFORM pg_sleep(0.005);
	END LOOP;
	RETURN round(extract(epoch FROM clock_timestamp() - started) * 1000);
END $$;
SELECT pg_temp.statement_ms(:'app', :'pattern');
SQL
}
