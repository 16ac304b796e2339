-- The extension installs into schema elt, reports its version and reserves
-- the elt. settings prefix.
SELECT extname, extversion, extnamespace::regnamespace AS schema, extrelocatable
FROM pg_extension WHERE extname = 'pg_elt';
SELECT elt.version() = (SELECT extversion FROM pg_extension WHERE extname = 'pg_elt') AS versions_match;
SHOW elt.history_retention;
SET elt.history_retention = '7d';
SHOW elt.history_retention;
RESET elt.history_retention;
-- an unknown setting under the reserved prefix is refused
SET elt.no_such_setting = 1;
