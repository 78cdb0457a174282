"""Storage: the schema, its migrations, and the queries the rest of synmon needs."""

# The account tables live in their own module; importing it here puts them in
# Base.metadata wherever the schema is used (migrations, the schema test), without
# models.py having to import it back.
from app.storage import accounts as _accounts  # noqa: F401
