-- Lineage: syncs join the graph as nodes fed by their source relation.

CREATE OR REPLACE VIEW elt.lineage_edges AS
	SELECT d.depends_on AS source, d.kind AS source_kind,
		   d.model AS target, 'model'::text AS target_kind
	FROM elt.dependencies d
	UNION ALL
	SELECT rel.name, CASE WHEN m.name IS NULL THEN 'source' ELSE 'model' END,
		   'sync:' || s.name, 'sync'
	FROM elt.sync s
	CROSS JOIN LATERAL (SELECT format('%I.%I', n.nspname, c.relname) COLLATE "default" AS name
						FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
						WHERE c.oid = to_regclass(s.source)) rel
	LEFT JOIN elt.models m ON m.name = rel.name;

CREATE OR REPLACE VIEW elt.lineage_nodes AS
	SELECT m.name AS node, 'model'::text AS kind, m.materialized AS detail
	FROM elt.models m
	UNION
	SELECT e.source, e.source_kind, NULL FROM elt.lineage_edges e WHERE e.source_kind = 'source'
	UNION
	SELECT 'sync:' || s.name, 'sync', 'to ' || d.name
	FROM elt.sync s JOIN elt.destination d ON d.id = s.destination_id;
