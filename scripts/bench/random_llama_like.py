#!/usr/bin/env python3
"""A Hugging Face Llama directory with Llama-3.2-1B's layer shapes (16 layers, hidden 2048, FFN
8192, 32/8 heads × 64, Llama-3 RoPE scaling, tied embeddings) and random f16 weights, taking its
tokenizer and Llama-3 chat template from another HF directory (so the vocabulary is that
tokenizer's): proves the Llama-3.2 path of the assistant runs at full layer size where the real
weights cannot be had. Numpy only. `random_llama_like.py TOKENIZER_DIR OUT_DIR`."""
import json, os, shutil, struct, sys

import numpy as np


def main(tok_dir, out):
    os.makedirs(out, exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(out, f))
    small = json.load(open(os.path.join(tok_dir, "config.json")))
    c = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": small["vocab_size"], "hidden_size": 2048, "intermediate_size": 8192,
        "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
        "head_dim": 64, "hidden_act": "silu", "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": True, "bos_token_id": small.get("bos_token_id"),
        "eos_token_id": small.get("eos_token_id"), "torch_dtype": "float16",
    }
    json.dump(c, open(os.path.join(out, "config.json"), "w"), indent=1)
    d, f, kv = 2048, 8192, 8 * 64
    shapes = {"model.embed_tokens.weight": [c["vocab_size"], d], "model.norm.weight": [d]}
    for i in range(16):
        p = f"model.layers.{i}"
        shapes.update({
            f"{p}.self_attn.q_proj.weight": [d, d], f"{p}.self_attn.k_proj.weight": [kv, d],
            f"{p}.self_attn.v_proj.weight": [kv, d], f"{p}.self_attn.o_proj.weight": [d, d],
            f"{p}.mlp.gate_proj.weight": [f, d], f"{p}.mlp.up_proj.weight": [f, d],
            f"{p}.mlp.down_proj.weight": [d, f],
            f"{p}.input_layernorm.weight": [d], f"{p}.post_attention_layernorm.weight": [d],
        })
    rng = np.random.default_rng(0)
    header, off = {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as fh:
        fh.write(struct.pack("<Q", len(h)) + h)
        for name, shape in shapes.items():
            if name.endswith("norm.weight"):
                a = np.ones(shape, dtype="<f2")
            else:
                a = (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[1])).astype("<f2")
            fh.write(a.tobytes())


if __name__ == "__main__":
    main(*sys.argv[1:3])
