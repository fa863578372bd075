#!/usr/bin/env python3
"""Reference renderings of chat templates with jinja2, as transformers renders them.

Writes tests/fixtures/llamacpp/chat_templates.json (schema: tests/fixtures/llamacpp/README.md) for
Hearth's chat-template tests, which render the same templates with minijinja and compare exactly.

Templates:
  smollm2     tokenizer.chat_template of SmolLM2-135M-Instruct.Q4_1.gguf (read with llama-cpp-python)
  chatml      crates/hearth-models/src/chat/chatml.jinja   (Hearth's built-in fallback)
  llama3      crates/hearth-models/src/chat/llama3.jinja   (Hearth's built-in fallback)
  *.jinja     tests/fixtures/llamacpp/templates/ (copied from llama.cpp's models/templates)

Run: python3 scripts/reference/chat_templates.py --model PATH/SmolLM2-135M-Instruct.Q4_1.gguf
"""

import argparse
import glob
import json
import os
import sys

import jinja2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_jinja  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "llamacpp")
BUILTIN = os.path.join(ROOT, "crates", "hearth-models", "src", "chat")

CONVERSATIONS = [
    ("user", [{"role": "user", "content": "What is the capital of France?"}]),
    ("system_user", [
        {"role": "system", "content": "You are a terse assistant. Answer in one word."},
        {"role": "user", "content": "Capital of Japan?"},
    ]),
    ("multi_turn", [
        {"role": "system", "content": "You help with Rust."},
        {"role": "user", "content": "How do I read a file?"},
        {"role": "assistant", "content": "Use `std::fs::read_to_string(path)?`."},
        {"role": "user", "content": "And write one?"},
    ]),
    ("whitespace_unicode", [
        {"role": "user", "content": "  padded question with\n\nblank lines  \n"},
        {"role": "assistant", "content": "日本語 ✓ — café 😀"},
        {"role": "user", "content": "\tTabbed\t"},
    ]),
    ("ends_with_assistant", [
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "Hi!"},
    ]),
    # Two user turns in a row: templates that enforce alternation raise_exception.
    ("user_user", [
        {"role": "user", "content": "First."},
        {"role": "user", "content": "Second."},
    ]),
]


def gguf_template(model):
    from llama_cpp import Llama

    llm = Llama(model_path=model, vocab_only=True, verbose=False)
    bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8")
    eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8")
    return llm.metadata["tokenizer.chat_template"], bos, eos


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out", default=os.path.join(FIXTURES, "chat_templates.json"))
    args = ap.parse_args()

    smol, smol_bos, smol_eos = gguf_template(args.model)
    templates = [
        ("smollm2", "gguf:tokenizer.chat_template", smol, smol_bos, smol_eos),
        ("chatml", "builtin:chatml", read(os.path.join(BUILTIN, "chatml.jinja")), None, "<|im_end|>"),
        ("llama3", "builtin:llama3", read(os.path.join(BUILTIN, "llama3.jinja")),
         "<|begin_of_text|>", "<|eot_id|>"),
    ]
    for path in sorted(glob.glob(os.path.join(FIXTURES, "templates", "*.jinja"))):
        name = os.path.basename(path)
        if "Llama-3" in name:
            bos, eos = "<|begin_of_text|>", "<|eot_id|>"
        elif "Mistral" in name:
            bos, eos = "<s>", "</s>"
        else:
            bos, eos = "<|im_start|>", "<|im_end|>"
        templates.append((name[: -len(".jinja")], "file:templates/" + name, read(path), bos, eos))

    out = []
    for name, source_ref, source, bos, eos in templates:
        renders = []
        for conv_name, messages in CONVERSATIONS:
            for agp in (True, False):
                row = {"conversation": conv_name, "add_generation_prompt": agp}
                try:
                    row["text"] = hf_jinja.render(source, messages, agp, bos, eos)
                except jinja2.exceptions.TemplateError as e:
                    row["error"] = str(e)
                renders.append(row)
        out.append({"name": name, "source": source_ref, "bos_token": bos, "eos_token": eos,
                    "renders": renders})

    data = {
        "generator": "scripts/reference/chat_templates.py",
        "jinja2": jinja2.__version__,
        "conversations": [{"name": n, "messages": m} for n, m in CONVERSATIONS],
        "templates": out,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: {len(out)} templates", file=sys.stderr)


if __name__ == "__main__":
    main()
