"""Where the run documents lived while the web was a WSGI application on wsgiref.

Nothing is served from here any more (the web product is app/web/app.py, on uvicorn);
the names stay importable for the code that still imports them from this module.
"""

from __future__ import annotations

from app.web.documents import DETAIL_FIELDS, RUN_FIELDS, run_document

__all__ = ["DETAIL_FIELDS", "RUN_FIELDS", "run_document"]
