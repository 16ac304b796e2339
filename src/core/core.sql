-- Core: library functions every component uses.

CREATE FUNCTION elt.version() RETURNS text
	LANGUAGE c STRICT VOLATILE
	AS 'MODULE_PATHNAME', 'elt_version';
COMMENT ON FUNCTION elt.version() IS
	'Version of the loaded pg_elt library.';
