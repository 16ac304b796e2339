-- Streaming: the SQL surface and its errors (the worker itself is tested by
-- test/process/stream_*.sh on clusters of their own), and syncs in lineage.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA st;
CREATE TABLE st.people (id int PRIMARY KEY, email text, team text);
CREATE VIEW st.people_view AS SELECT * FROM st.people;
SELECT elt.create_model('st.people_by_team', 'SELECT team, count(*) AS n FROM st.people GROUP BY team',
	unique_key => '{team}');
SELECT elt.create_destination('st_dest', 'http://127.0.0.1:9/hook');
SELECT elt.create_sync('st_table', 'st.people', 'st_dest', '{id}');
SELECT elt.create_sync('st_view', 'st.people_view', 'st_dest', '{id}');
SELECT elt.create_sync('st_team', 'st.people', 'st_dest', '{team}');
SELECT elt.create_sync('st_model', 'st.people_by_team', 'st_dest', '{team}');

-- a view cannot stream; the hint says what to do instead
SELECT elt.stream('st_view');
-- the worker serves one database (elt.database), not this one
SHOW elt.database;
SELECT elt.stream('st_table');
SELECT elt.stream('no_such_sync');
-- turning off a sync that never streamed is harmless
SELECT elt.stream('st_table', false);
SELECT count(*) AS streams FROM elt.stream;
-- settings of the worker
SHOW elt.stream_enabled;
SHOW elt.stream_batch;
SET elt.stream_batch = 0;
SELECT count(*) >= 1 AS worker_status_has_a_row FROM elt.worker_status;
-- EXECUTE is the DBA's to grant
SELECT has_function_privilege('public', 'elt.stream(text, boolean)', 'EXECUTE') AS public_may_stream;

-- syncs in lineage: fed by a model or by a source table
SELECT * FROM elt.lineage_nodes WHERE kind = 'sync' ORDER BY node;
SELECT * FROM elt.lineage_edges WHERE target_kind = 'sync' ORDER BY target;
-- the syncs' nodes of the Mermaid graph (node numbers depend on what else
-- the database holds, so they are left out: this suite also runs alone)
SELECT regexp_replace(line, '^\s*n[0-9]+', 'n') AS sync_node
FROM regexp_split_to_table(elt.lineage_mermaid(), E'\n') AS line
WHERE line ~ 'sync:' ORDER BY 1;

-- retention covers activation's run history and request log too
INSERT INTO elt.sync_run (sync_id, started_at)
SELECT id, now() - interval '3 days' FROM elt.sync WHERE name = 'st_table';
SET elt.history_retention = '2d';
SELECT count(*) FROM elt.run('st.people_by_team');
SELECT count(*) AS old_sync_runs FROM elt.sync_run WHERE started_at < now() - interval '2 days';
RESET elt.history_retention;

SELECT elt.drop_sync(s) FROM unnest(ARRAY['st_table', 'st_view', 'st_team', 'st_model']) s;
SELECT elt.drop_destination('st_dest');
SELECT elt.drop_model('st.people_by_team');
DROP SCHEMA st CASCADE;
