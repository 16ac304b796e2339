-- Lineage for people: the dependency graph as Graphviz DOT and as Mermaid.

-- Every node of the graph with its kind, and every edge (from is read by to).
CREATE VIEW elt.lineage_edges AS
	SELECT d.depends_on AS source, d.kind AS source_kind,
		   d.model AS target, 'model'::text AS target_kind
	FROM elt.dependencies d;
COMMENT ON VIEW elt.lineage_edges IS
	'Edges of the lineage graph: data flows from source to target.';

CREATE VIEW elt.lineage_nodes AS
	SELECT m.name AS node, 'model'::text AS kind, m.materialized AS detail
	FROM elt.models m
	UNION
	SELECT e.source, e.source_kind, NULL FROM elt.lineage_edges e WHERE e.source_kind <> 'model';
COMMENT ON VIEW elt.lineage_nodes IS
	'Nodes of the lineage graph: models (detail = materialization) and source relations.';

CREATE FUNCTION elt.lineage_dot() RETURNS text
	LANGUAGE sql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	SELECT concat_ws(E'\n',
		'digraph pg_elt {',
		'  rankdir=LR;',
		'  node [fontname="Helvetica", fontsize=11];',
		(SELECT string_agg(format('  %s [label=%s, %s];',
								  '"' || replace(n.node, '"', '\"') || '"',
								  '"' || replace(n.node, '"', '\"')
									  || coalesce('\n(' || n.detail || ')', '') || '"',
								  CASE n.kind WHEN 'model' THEN 'shape=box, style="rounded,filled", fillcolor="#dbeafe"'
								  WHEN 'sync' THEN 'shape=cds, style=filled, fillcolor="#fde68a"'
								  ELSE 'shape=cylinder, style=filled, fillcolor="#e5e7eb"' END),
						   E'\n' ORDER BY n.kind, n.node)
		 FROM elt.lineage_nodes n),
		(SELECT string_agg(format('  %s -> %s;',
								  '"' || replace(e.source, '"', '\"') || '"',
								  '"' || replace(e.target, '"', '\"') || '"'),
						   E'\n' ORDER BY e.source, e.target)
		 FROM elt.lineage_edges e),
		'}')
$$;
COMMENT ON FUNCTION elt.lineage_dot() IS
	'The lineage graph in Graphviz DOT: sources as cylinders, models as rounded boxes.';

CREATE FUNCTION elt.lineage_mermaid() RETURNS text
	LANGUAGE sql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	WITH ids AS (
		SELECT n.*, 'n' || row_number() OVER (ORDER BY n.kind, n.node) AS id
		FROM elt.lineage_nodes n
	)
	SELECT concat_ws(E'\n',
		'flowchart LR',
		(SELECT string_agg('  ' || i.id ||
						   CASE i.kind WHEN 'model' THEN '("' ELSE '[("' END ||
						   replace(i.node, '"', '#quot;') ||
						   coalesce('<br/><i>' || i.detail || '</i>', '') ||
						   CASE i.kind WHEN 'model' THEN '")' ELSE '")]' END,
						   E'\n' ORDER BY i.id)
		 FROM ids i WHERE i.kind IN ('model', 'source')),
		(SELECT string_agg('  ' || i.id || '>"' || replace(i.node, '"', '#quot;')
						   || coalesce('<br/><i>' || i.detail || '</i>', '') || '"]',
						   E'\n' ORDER BY i.id)
		 FROM ids i WHERE i.kind = 'sync'),
		(SELECT string_agg('  ' || s.id || ' --> ' || t.id, E'\n' ORDER BY s.id, t.id)
		 FROM elt.lineage_edges e
		 JOIN ids s ON s.node = e.source
		 JOIN ids t ON t.node = e.target),
		'  classDef model fill:#dbeafe,stroke:#1d4ed8',
		'  classDef source fill:#e5e7eb,stroke:#374151',
		(SELECT '  class ' || string_agg(i.id, ',' ORDER BY i.id) || ' model' FROM ids i WHERE i.kind = 'model'),
		(SELECT '  class ' || string_agg(i.id, ',' ORDER BY i.id) || ' source' FROM ids i WHERE i.kind = 'source'),
		CASE WHEN EXISTS (SELECT 1 FROM ids i WHERE i.kind = 'sync') THEN '  classDef sync fill:#fde68a,stroke:#b45309' END,
		(SELECT '  class ' || string_agg(i.id, ',' ORDER BY i.id) || ' sync' FROM ids i WHERE i.kind = 'sync'))
$$;
COMMENT ON FUNCTION elt.lineage_mermaid() IS
	'The lineage graph as a Mermaid flowchart: sources as cylinders, models as rounded boxes.';
