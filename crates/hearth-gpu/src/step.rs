//! Per-step dynamic values shared by every kernel of a forward pass.
//!
//! A recorded [`crate::Program`] has fixed bind groups; what changes from one decode step to the next
//! (the position) lives in this one uniform buffer, written with `queue.write_buffer` before each submit.
//! Queue writes are ordered with submits, so several steps may be in flight at once.
//!
//! WGSL side (copy into kernels that need it):
//! ```wgsl
//! struct Step { pos: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }
//! // step: uniform — pos = position of the first token of this batch, n_tokens = tokens in the batch
//! @group(0) @binding(N) var<uniform> step: Step;
//! ```
//! Token `m` of the batch (`m < n_tokens`) sits at position `step.pos + m`; after this batch the KV
//! cache holds `step.pos + step.n_tokens` positions.

use crate::Gpu;

#[derive(Debug)]
pub struct Step {
    buffer: wgpu::Buffer,
}

impl Step {
    pub fn new(gpu: &Gpu) -> Self {
        Self {
            buffer: crate::tensor::uniform(gpu, "step", &[0, 0, 0, 0]),
        }
    }
    /// Sets the batch's first position and length (takes effect for the next submit).
    pub fn set(&self, gpu: &Gpu, pos: u32, n_tokens: u32) {
        gpu.queue().write_buffer(
            &self.buffer,
            0,
            bytemuck::cast_slice(&[pos, n_tokens, 0u32, 0u32]),
        );
    }
    pub fn binding(&self) -> wgpu::BufferBinding<'_> {
        self.buffer.as_entire_buffer_binding()
    }
}
