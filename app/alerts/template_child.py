"""The child process that renders one webhook template (see ``app.alerts.templates``):
``python -m app.alerts.template_child``, one JSON request on stdin, one JSON answer on
stdout. It imports nothing but jinja2, so that it starts fast, and limits its own
memory and CPU before it reads the template.
"""

from __future__ import annotations

import json
import sys
from typing import Any

MAX_OUTPUT_CHARS = 256 * 1024
MAX_RENDER_SECONDS = 1.0
MEMORY_LIMIT_BYTES = 256 * 1024 * 1024
EXCEEDED = (
    f"the template exceeded its limits while rendering ({MAX_RENDER_SECONDS:g}s of CPU, "
    f"{MEMORY_LIMIT_BYTES // 2**20} MiB)"
)


def _limit_resources() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    cpu = int(MAX_RENDER_SECONDS) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _render_here(source: str, context: dict[str, Any]) -> dict[str, Any]:
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # autoescape off: a body is JSON or text, not HTML (``tojson`` quotes a value for JSON).
    environment = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
    try:
        template = environment.from_string(source)
        parts: list[str] = []
        size = 0
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                return {"error": f"the template's output exceeds {MAX_OUTPUT_CHARS:,} characters"}
            parts.append(chunk)
    except SecurityError as exc:
        return {"error": f"refused by the template sandbox: {exc}"}
    except MemoryError:
        return {"error": EXCEEDED}
    except TemplateError as exc:
        return {"error": f"invalid template: {exc}"}
    except Exception as exc:  # noqa: BLE001 - the template's own error (1/0, a bad filter)
        return {"error": f"the template failed: {type(exc).__name__}: {exc}"}
    return {"body": "".join(parts)}


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    _limit_resources()
    answer = _render_here(str(request["template"]), dict(request["context"]))
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
