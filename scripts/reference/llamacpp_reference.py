#!/usr/bin/env python3
"""Reference data from real llama.cpp (through llama-cpp-python) for Hearth's fidelity tests.

Writes tests/fixtures/llamacpp/smollm2.json (schema: tests/fixtures/llamacpp/README.md):
  (a) tokenizations of varied strings (parse_special=True), with and without add_special;
  (b) teacher-forced logits: top-10 ids/logits at every position of a few prompts, plus the
      full-vocabulary top-1/top-2 margin;
  (c) greedy chat completions (ChatML template from the GGUF, rendered as transformers renders it).

Setup (CPU build of llama.cpp from source):
  pip install cmake ninja scikit-build-core numpy jinja2
  pip download --no-deps --no-build-isolation --no-binary :all: llama-cpp-python -d ~/.cache/hearth/sdist
  CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-build-isolation ~/.cache/hearth/sdist/llama_cpp_python-*.tar.gz
Run:
  python3 scripts/reference/llamacpp_reference.py --model PATH/SmolLM2-135M-Instruct.Q4_1.gguf \
      --llama-cpp-src DIR/vendor/llama.cpp   # (optional) to record the llama.cpp commit
"""

import argparse
import json
import os
import platform
import subprocess
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_jinja  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(ROOT, "tests", "fixtures", "llamacpp", "smollm2.json")

# Varied strings for tokenization: ASCII, whitespace runs, digits, code, emoji, CJK, accents,
# special tokens, contractions, newlines.
TOKENIZE_STRINGS = [
    "Hello, world!",
    "hello world",
    " leading space",
    "trailing space ",
    "  two leading spaces",
    "multiple   spaces   between",
    "tabs\tand\ttabs",
    "\t\tindented with tabs",
    "line one\nline two",
    "blank lines\n\n\nafter",
    "windows\r\nnewlines\r\n",
    "   \n  \n",
    " ",
    "\n",
    "1234567890",
    "3.14159 and 2,718,281",
    "Year 2024: 365 days, 12 months.",
    "def add(a, b):\n    return a + b\n",
    "for (int i = 0; i < n; ++i) { sum += x[i]; }",
    "<div class=\"main\">content</div>",
    "https://example.com/path?query=1&x=y#frag",
    "snake_case_name and camelCaseName and SCREAMING_CASE",
    "I'm sure you're right, they'll see it's what we'd've done.",
    "DON'T SHOUT, IT'S RUDE",
    "Emoji: 😀🎉👍🏽 and ❤️",
    "🦙🦙🦙",
    "日本語のテキストです。",
    "中文分词测试，你好世界！",
    "한국어 문장입니다.",
    "Café, naïve, résumé, coöperate, Ångström",
    "Ελληνικά και русский текст",
    "مرحبا بالعالم",
    "math: ∑ x² ≥ ∫ f(x) dx → ∞",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|endoftext|>",
    "text before<|im_end|>text after",
    "not special: <|im_start and im_end|>",
    "<repo_name>hearth<file_sep>src/main.rs",
    "Mixed: 42 apples, 7 oranges; total=49!!!",
    "....!!!???---___***",
    "",
]

# Prompts for teacher-forced logits (the ChatML chat prompt is added in main()).
LOGIT_PROMPTS = [
    ("story", "Once upon a time, in a small village nestled between rolling hills, there lived an old "
              "clockmaker who spent his days repairing"),
    ("code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n"
             "        return n\n    return"),
    ("facts", "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is"),
]

CHAT_QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
]
MAX_NEW_TOKENS = 48
TOP_K = 10


def llama_commit(src):
    if not src:
        return None
    try:
        out = subprocess.run(["git", "-C", src, "log", "-1", "--format=%H %cI %s"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def tokenizations(llm):
    rows = []
    for s in TOKENIZE_STRINGS:
        b = s.encode("utf-8")
        rows.append({
            "text": s,
            "ids": llm.tokenize(b, add_bos=False, special=True),
            "ids_add_special": llm.tokenize(b, add_bos=True, special=True),
        })
    return rows


def teacher_forced(llm, ids):
    """Logits at every position of `ids`, evaluated in one batch from an empty cache."""
    llm.reset()
    llm.eval(ids)
    scores = np.array(llm.scores[: len(ids), :], dtype=np.float32)
    positions = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        top = order[:TOP_K]
        positions.append({
            "top_ids": [int(i) for i in top],
            "top_logits": [float(row[i]) for i in top],
            "margin": float(row[order[0]] - row[order[1]]),
        })
    return positions


def greedy(llm, prompt_ids, eos_ids):
    llm.reset()
    llm.eval(prompt_ids)
    out = []
    stop = "length"
    for _ in range(MAX_NEW_TOKENS):
        logits = np.array(llm.scores[llm.n_tokens - 1, :], dtype=np.float32)
        tok = int(np.argmax(logits))
        out.append(tok)
        if tok in eos_ids:
            stop = "eos"
            break
        llm.eval([tok])
    return out, stop


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--llama-cpp-src", help="llama.cpp source tree (a git checkout) to record its commit")
    args = ap.parse_args()

    llm = Llama(model_path=args.model, n_ctx=1024, n_batch=512, n_ubatch=512, logits_all=True,
                n_threads=2, n_threads_batch=2, n_gpu_layers=0, seed=0, verbose=False)
    meta = llm.metadata
    template = meta["tokenizer.chat_template"]
    vocab = llm._model.vocab
    eos_ids = sorted({i for i in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, i)})
    bos_text = llm.detokenize([llm.token_bos()], special=True).decode("utf-8")
    eos_text = llm.detokenize([llm.token_eos()], special=True).decode("utf-8")

    prompts = [{"name": n, "text": t, "ids": llm.tokenize(t.encode(), add_bos=True, special=True)}
               for n, t in LOGIT_PROMPTS]
    chat_text = hf_jinja.render(template, [{"role": "user", "content": CHAT_QUESTIONS[0]}], True,
                                bos_text, eos_text)
    prompts.append({"name": "chat", "text": chat_text,
                    "ids": llm.tokenize(chat_text.encode(), add_bos=True, special=True)})
    for p in prompts:
        print(f"{p['name']}: {len(p['ids'])} tokens", file=sys.stderr)
        p["positions"] = teacher_forced(llm, p["ids"])

    chats = []
    for q in CHAT_QUESTIONS:
        messages = [{"role": "user", "content": q}]
        text = hf_jinja.render(template, messages, True, bos_text, eos_text)
        prompt_ids = llm.tokenize(text.encode(), add_bos=True, special=True)
        ids, stop = greedy(llm, prompt_ids, set(eos_ids))
        content = [i for i in ids if i not in eos_ids]
        chats.append({
            "messages": messages,
            "prompt": text,
            "prompt_ids": prompt_ids,
            "completion_ids": ids,
            "completion_text": llm.detokenize(content, special=False).decode("utf-8", errors="replace"),
            "stop": stop,
        })
        print(f"chat {q!r} -> {chats[-1]['completion_text']!r}", file=sys.stderr)

    data = {
        "generator": "scripts/reference/llamacpp_reference.py",
        "llama_cpp_python": llama_cpp.__version__,
        "llama_cpp_commit": llama_commit(args.llama_cpp_src),
        "system_info": llama_cpp.llama_print_system_info().decode(),
        "platform": platform.platform(),
        "model": os.path.basename(args.model),
        "model_size_bytes": os.path.getsize(args.model),
        "settings": {"n_ctx": 1024, "n_batch": 512, "n_threads": 2, "device": "cpu",
                     "logits_all": True, "top_k": TOP_K, "max_new_tokens": MAX_NEW_TOKENS,
                     "sampling": "greedy argmax over the raw logits"},
        "vocab": {"n_vocab": llm.n_vocab(), "bos_id": llm.token_bos(), "eos_id": llm.token_eos(),
                  "eog_ids": eos_ids, "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab))},
        "tokenize": tokenizations(llm),
        "logits": prompts,
        "chat": chats,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
