"""``python -m app.cli``: the synmon command."""

from app.cli import main

# Guarded so that importing every module (tests/system/test_packaging.py's probe) does not run it.
if __name__ == "__main__":
    main()
