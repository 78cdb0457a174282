"""The one base of every error synmon raises on purpose.

It lives in config/, the bottom of the import graph, because the settings loader
raises one (``ConfigError``) and config/ imports nothing of app/.
"""

from __future__ import annotations


class SynmonError(Exception):
    """An error synmon expects and can explain, as opposed to a bug.

    ``permanent``: the same input fails the same way however often it is retried (a
    malformed message, an invalid definition); a retryable error may pass next time
    (a target or queue that did not answer). ``exit_code`` is what the CLI exits with.
    """

    permanent: bool = True
    exit_code: int = 1


class RetryableError(SynmonError):
    """An error that may not happen again: the job is worth retrying."""

    permanent = False
