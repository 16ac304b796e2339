-- The extension installs into schema elt, reports its version and reserves
-- the elt. settings prefix.
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'pg_elt';
-- schema elt belongs to the extension
SELECT n.nspname, d.deptype FROM pg_depend d JOIN pg_namespace n ON n.oid = d.objid
WHERE d.classid = 'pg_namespace'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_elt');
SELECT elt.version() = (SELECT extversion FROM pg_extension WHERE extname = 'pg_elt') AS versions_match;
SHOW elt.history_retention;
SET elt.history_retention = '7d';
SHOW elt.history_retention;
RESET elt.history_retention;
-- an unknown setting under the reserved prefix is refused
SET elt.no_such_setting = 1;
