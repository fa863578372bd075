//! The GPU decoder against the plain CPU reference on small random configs.

use hearth_gpu::testing::{assert_close, block, gpu, gpu_with};
use hearth_gpu::{GpuOptions, WeightFormat};

use super::*;
use crate::config::Llama3RopeScaling;
use crate::reference::{argmax, CpuLlama};
use hearth_gpu::sample::sample_ref;

/// A SmolLM2-like shape in miniature: GGUF rope layout, GQA 3:1, Q4 weights with a Q8 tied embedding.
fn smollm_like() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 300,
        hidden_size: 96,
        intermediate_size: 256,
        num_hidden_layers: 2,
        num_attention_heads: 6,
        num_key_value_heads: 2,
        head_dim: 16,
        rms_norm_eps: 1e-5,
        rope_theta: 100000.0,
        rope_scaling: None,
        rope_style: RopeStyle::Adjacent,
        max_position_embeddings: 128,
        tie_word_embeddings: true,
        bos_token_id: Some(1),
        eos_token_ids: vec![2],
    }
}

/// Llama-3.2 in miniature: Hugging Face rope layout, llama3 frequency scaling, GQA 4:1, tied.
fn llama3_like() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 256,
        hidden_size: 128,
        intermediate_size: 320,
        num_hidden_layers: 3,
        num_attention_heads: 8,
        num_key_value_heads: 2,
        head_dim: 16,
        rope_theta: 500000.0,
        rope_scaling: Some(Llama3RopeScaling {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64,
        }),
        rope_style: RopeStyle::Half,
        max_position_embeddings: 256,
        ..smollm_like()
    }
}

fn tokens(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 13) % vocab) as u32).collect()
}

/// Both KV-cache precisions: f32 (no `shader-f16`) must match the f32 CPU reference to float
/// reordering noise; f16 (chosen where the device has it) rounds K and V to 11 significant bits, so its
/// bound is wider. Bounds are relative to the largest logit of the row.
fn devices() -> [(Gpu, f32); 2] {
    let f32_kv = gpu_with(&GpuOptions {
        allow_f16: false,
        ..GpuOptions::from_env()
    });
    let f16_kv = gpu();
    let f16_tol = if f16_kv.features().f16 { 2e-3 } else { 2e-4 };
    [(f32_kv, 2e-4), (f16_kv, f16_tol)]
}

/// Teacher-forced GPU logits (prefill path, several chunks) equal the CPU reference.
fn check_logits(config: LlamaConfig, format: WeightFormat, n: usize, chunk: usize) {
    let w = LlamaWeights::random(&config, format, 7).unwrap();
    let toks = tokens(n, config.vocab_size);
    let want = CpuLlama::new(&w).forward_all(&toks);
    for (gpu, tol) in devices() {
        let opts = LlamaOptions {
            max_context: 128,
            prefill_chunk: chunk,
            logits_rows: chunk,
        };
        let mut model = block(Llama::new(&gpu, &w, opts)).unwrap();
        let got = block(model.logits_all(&toks)).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let scale = w.iter().fold(0f32, |a, v| a.max(v.abs()));
            assert_close(
                &format!(
                    "{format:?} logits at position {i} (f16 kv: {})",
                    gpu.features().f16
                ),
                g,
                w,
                tol * scale,
                0.0,
            );
        }
    }
}

/// The INT4 formats: asymmetric (GGUF Q4_1) and symmetric (GGUF Q4_0, the converter's default).
const INT4: [WeightFormat; 2] = [WeightFormat::Q4, WeightFormat::Q4S];

#[test]
fn smollm_like_int4_logits_match_cpu() {
    // hidden 96: three groups a row, so Q4S rows end on a half-used scale word.
    for format in INT4 {
        check_logits(smollm_like(), format, 40, 16);
    }
}

#[test]
fn llama3_like_int4_logits_match_cpu() {
    for format in INT4 {
        check_logits(llama3_like(), format, 37, 37);
    }
}

#[test]
fn f32_and_q8_logits_match_cpu() {
    check_logits(smollm_like(), WeightFormat::F32, 9, 4);
    check_logits(llama3_like(), WeightFormat::Q8, 9, 9);
}

/// Prefill + decode steps (the generation path) follow the CPU reference token by token.
#[test]
fn greedy_generation_matches_cpu() {
    for format in INT4 {
        greedy_generation_matches_cpu_in(format);
    }
}

fn greedy_generation_matches_cpu_in(format: WeightFormat) {
    let config = llama3_like();
    let w = LlamaWeights::random(&config, format, 11).unwrap();
    let prompt = tokens(11, config.vocab_size);
    for (gpu, tol) in devices() {
        let mut model = block(Llama::new(
            &gpu,
            &w,
            LlamaOptions {
                max_context: 64,
                prefill_chunk: 8,
                logits_rows: 1,
            },
        ))
        .unwrap();
        let mut cpu = CpuLlama::new(&w);
        let mut logits = cpu.forward_all(&prompt).pop().unwrap();
        block(model.prefill(&prompt)).unwrap();
        for step in 0..12 {
            let gpu_logits = block(model.last_logits()).unwrap();
            let scale = logits.iter().fold(0f32, |a, v| a.max(v.abs()));
            assert_close(
                &format!("{format:?} decode step {step}"),
                &gpu_logits,
                &logits,
                tol * scale,
                0.0,
            );
            let id = block(model.read_token()).unwrap();
            assert_eq!(
                id as usize,
                argmax(&gpu_logits),
                "sampled id is the argmax of the GPU logits"
            );
            // Follow the GPU's choice so both stay on the same sequence even at near-ties.
            logits = cpu.forward(id);
            block(model.decode_step()).unwrap();
        }
    }
}

#[test]
fn bad_requests_are_errors() {
    let gpu = gpu();
    let config = smollm_like();
    let w = LlamaWeights::random(&config, WeightFormat::Q4, 3).unwrap();
    let mut model = block(Llama::new(
        &gpu,
        &w,
        LlamaOptions {
            max_context: 16,
            prefill_chunk: 8,
            logits_rows: 1,
        },
    ))
    .unwrap();
    assert!(matches!(
        block(model.prefill(&[])),
        Err(ModelError::Config(_))
    ));
    assert!(matches!(
        block(model.prefill(&[5000])),
        Err(ModelError::Config(_))
    ));
    assert!(matches!(
        block(model.prefill(&tokens(17, 300))),
        Err(ModelError::ContextOverflow { .. })
    ));
    block(model.prefill(&tokens(16, 300))).unwrap();
    assert!(matches!(
        block(model.decode_step()),
        Err(ModelError::ContextOverflow { .. })
    ));
}

/// A decode step records one dispatch per kernel: the embedding, five per layer (qkv, rope with
/// attention, o, gate/up, down), the LM head and the sampler's plan (greedy 1, top-k/top-p 4). A
/// change of kind of sampling records the step again, and its draws follow the CPU mirror of the
/// sampler on the GPU's logits (repetition penalty included).
#[test]
fn decode_dispatches_and_sampling_plans() {
    let config = llama3_like();
    let w = LlamaWeights::random(&config, WeightFormat::Q4, 5).unwrap();
    let gpu = gpu();
    let opts = LlamaOptions {
        max_context: 64,
        prefill_chunk: 8,
        logits_rows: 1,
    };
    let mut model = block(Llama::new(&gpu, &w, opts)).unwrap();
    let forward = 1 + 5 * config.num_hidden_layers + 1;
    let step_len = |m: &Llama| block(m.record(1, Head::Sample)).unwrap().len();
    assert_eq!(step_len(&model), forward + 1, "greedy");
    let chat = SamplingParams {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.95,
        repetition_penalty: 1.1,
        penalty_last_n: 64,
        seed: 7,
    };
    let prompt = tokens(5, config.vocab_size);
    block(model.prefill(&prompt)).unwrap(); // records the greedy step
    model.reset();
    model.set_sampling(&chat);
    assert_eq!(step_len(&model), forward + 4, "top-k + top-p");
    block(model.prefill(&prompt)).unwrap();
    let mut history = prompt.clone();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..16 {
        let logits = block(model.last_logits()).unwrap();
        let id = block(model.read_token()).unwrap();
        let pos = history.len() as u32;
        assert_eq!(id, sample_ref(&logits, &history, &chat, pos), "at {pos}");
        history.push(id);
        seen.insert(id);
        block(model.decode_step()).unwrap();
    }
    assert!(seen.len() > 1, "sampling, not the argmax: {seen:?}");
}
