"""Storage: the schema, its migrations, and the queries the rest of synmon needs."""
