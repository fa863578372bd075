//! Token generation: prefill, then one decode step per token, streaming ids to a callback.

use hearth_gpu::sample::SamplingParams;

use super::Llama;
use crate::error::Result;

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation stops after emitting none of these (end-of-turn / end-of-text ids).
    pub stop_ids: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A stop id was sampled (it is not part of the output).
    Stop,
    MaxTokens,
    /// The KV cache is full.
    ContextFull,
    /// The callback asked to stop.
    Cancelled,
}

#[derive(Clone, Debug)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub stop: StopReason,
}

impl Llama {
    /// Appends `prompt` to the context and generates up to `opts.max_tokens` tokens after it. `on_token`
    /// sees each token as soon as it is read back and returns `false` to stop.
    pub async fn generate(
        &mut self,
        prompt: &[u32],
        opts: &GenerateOptions,
        mut on_token: impl FnMut(u32) -> bool,
    ) -> Result<Generation> {
        self.set_sampling(&opts.sampling);
        let mut tokens = Vec::new();
        if opts.max_tokens == 0 {
            return Ok(Generation {
                tokens,
                stop: StopReason::MaxTokens,
            });
        }
        self.prefill(prompt).await?;
        let mut at = self.position();
        loop {
            // Queue up to DECODE_AHEAD steps before reading this token (the GPU history already
            // holds it), none past the last token wanted or the context; a stop token undoes them.
            while self.position() - at < super::DECODE_AHEAD
                && tokens.len() + (self.position() - at) + 1 < opts.max_tokens
                && self.position() < self.max_context()
            {
                self.decode_step().await?;
            }
            let id = self.read_token_at(at).await?;
            let stop = if opts.stop_ids.contains(&id) {
                Some(StopReason::Stop)
            } else {
                tokens.push(id);
                if !on_token(id) {
                    Some(StopReason::Cancelled)
                } else if tokens.len() >= opts.max_tokens {
                    Some(StopReason::MaxTokens)
                } else if at + 1 > self.max_context() {
                    // The sampled token sits at `at`; feeding it needs one more cache slot.
                    Some(StopReason::ContextFull)
                } else {
                    None
                }
            };
            if let Some(stop) = stop {
                // The context ends with the last sampled token unfed, as without the queued steps.
                self.truncate(at);
                return Ok(Generation { tokens, stop });
            }
            at += 1;
        }
    }
}
