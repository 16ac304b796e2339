-- pg_elt install script, assembled by the Makefile from src/*/*.sql.
\echo Use "CREATE EXTENSION pg_elt" to load this file. \quit
