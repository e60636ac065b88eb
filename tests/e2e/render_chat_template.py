"""Renders a chat template with Python Jinja2 the way transformers' apply_chat_template does.

The reference for the e2e tests: reads one JSON object from stdin, {"template", "messages",
"tools", "documents", "add_generation_prompt", "variables"} ("variables": the special tokens
and any template kwargs), and writes the rendered prompt's UTF-8 bytes to stdout. A template
error exits 1 with its message on stderr. The environment mirrors transformers'
chat_template_utils (see ../shared/fixtures/templates/README.md).
"""
import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def main():
    request = json.load(sys.stdin)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        text = env.from_string(request["template"]).render(
            messages=request["messages"],
            tools=request.get("tools"),
            documents=request.get("documents"),
            add_generation_prompt=request.get("add_generation_prompt", True),
            **request.get("variables", {}))
    except jinja2.exceptions.TemplateError as e:
        print(f"template error: {e}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.buffer.write(text.encode("utf-8"))


if __name__ == "__main__":
    main()
