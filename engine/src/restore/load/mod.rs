//! Loading a plain pg_dump script into PostgreSQL, in parallel, with the result psql gives.
