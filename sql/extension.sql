-- The extension's life: update path, and DROP EXTENSION leaves nothing of
-- its own behind (models' relations are user data and stay).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT * FROM pg_extension_update_paths('pg_elt') ORDER BY source, target;
ALTER EXTENSION pg_elt UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_elt';
SELECT count(*) AS model_tables_before FROM pg_tables WHERE schemaname = 'analytics';
DROP EXTENSION pg_elt;
SELECT count(*) AS model_tables_after FROM pg_tables WHERE schemaname = 'analytics';

-- a fresh install, used, then dropped: no schema, type, function, role or slot remains
CREATE TEMP TABLE roles_before AS SELECT rolname FROM pg_roles;
CREATE EXTENSION pg_elt;
SELECT elt.create_model('scratch.one', 'SELECT 1 AS one');
SELECT model, status FROM elt.run();
DROP EXTENSION pg_elt;
SELECT count(*) AS elt_schema FROM pg_namespace WHERE nspname = 'elt';
SELECT count(*) AS elt_types FROM pg_type WHERE typname LIKE '%model_name%';
SELECT count(*) AS leftover_functions FROM pg_proc WHERE probin LIKE '%pg_elt%';
SELECT count(*) AS slots FROM pg_replication_slots;
SELECT rolname AS new_roles FROM pg_roles EXCEPT SELECT rolname FROM roles_before;
DROP TABLE scratch.one;
DROP SCHEMA scratch;
CREATE EXTENSION pg_elt;
SELECT count(*) AS models FROM elt.models;
