-- Core: the schema (a member of the extension, so DROP EXTENSION removes it)
-- and the library functions every component uses.
CREATE SCHEMA elt;
COMMENT ON SCHEMA elt IS 'pg_elt: models, data tests, lineage and activation';

CREATE FUNCTION elt.version() RETURNS text
	LANGUAGE c STRICT VOLATILE
	AS 'MODULE_PATHNAME', 'elt_version';
COMMENT ON FUNCTION elt.version() IS
	'Version of the loaded pg_elt library.';
