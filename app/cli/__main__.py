"""``python -m app.cli``: the synmon command."""

from app.cli import main

main()
