"""Chat-template rendering exactly as `transformers` does it (apply_chat_template), without
importing transformers: jinja2's ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks,
the loopcontrols extension, `raise_exception`, and `tojson` with ensure_ascii=False.

`strftime_now` is deliberately not defined (Hearth does not define it either), so templates fall
back on their own fixed date.
"""

import json

import jinja2
import jinja2.ext
import jinja2.sandbox


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    return env


def render(source, messages, add_generation_prompt, bos_token=None, eos_token=None):
    """The prompt text, as `tokenizer.apply_chat_template(..., tokenize=False)` returns it."""
    template = environment().from_string(source)
    return template.render(
        messages=messages,
        add_generation_prompt=add_generation_prompt,
        bos_token=bos_token or "",
        eos_token=eos_token or "",
    )
