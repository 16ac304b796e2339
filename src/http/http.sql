-- HTTP delivery engine (src/http/): SQL objects.

CREATE FUNCTION elt.http_check(url text, method text DEFAULT 'GET',
							   timeout_ms int DEFAULT 5000)
	RETURNS TABLE(status int, latency_ms float8, error text)
	LANGUAGE c STRICT VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'elt_http_check';
COMMENT ON FUNCTION elt.http_check(text, text, int) IS
	'Sends one HTTP request through the delivery engine (network policy, no '
	'redirects, timeout, no retries) and reports its status, latency and error.';
REVOKE ALL ON FUNCTION elt.http_check(text, text, int) FROM PUBLIC;
