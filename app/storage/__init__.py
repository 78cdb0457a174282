"""Storage: the schema, its migrations, and the queries the rest of synmon needs."""

# The account and incident tables live in modules of their own; importing them here
# puts them in Base.metadata wherever the schema is used (migrations, the schema test),
# without models.py having to import them back.
from app.storage import accounts as _accounts  # noqa: F401
from app.storage import incidents as _incidents  # noqa: F401
