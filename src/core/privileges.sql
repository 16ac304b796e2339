-- Privileges: nothing in schema elt is granted to PUBLIC beyond PostgreSQL's
-- defaults; EXECUTE on what reaches the network or secrets is revoked in the
-- component that defines it. A DBA grants analysts what they need (see
-- docs/install.md).
REVOKE ALL ON ALL TABLES IN SCHEMA elt FROM PUBLIC;
