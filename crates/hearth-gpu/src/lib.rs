//! `hearth-gpu`: Hearth's GPU layer on wgpu, natively and on WebGPU.
//!
//! - [`Gpu`]: device with the adapter's real limits and the optional features kernels may use.
//! - [`Tensor`]: typed storage buffers; [`GpuMatrix`]: weights split across bindings.
//! - [`shaders`]: the registry of `shaders/*.wgsl` and the define preprocessor.
//! - [`Program`]: recorded dispatches replayed as one command buffer; [`profile`]: their GPU time.
//! - One module per kernel family: launcher, CPU reference and tests.

pub mod context;
pub mod error;
pub mod pipeline;
pub mod profile;
pub mod quant;
pub mod shaders;
pub mod step;
pub mod tensor;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub mod attention;
pub mod elementwise;
pub mod embed;
pub mod kv_cache;
pub mod matmul;
pub mod norm;
pub mod rope;
pub mod sample;

pub use context::{Gpu, GpuFeatures, GpuOptions};
pub use error::{GpuError, Result};
pub use pipeline::{Dispatch, Kernel, KernelKey, Program};
pub use quant::{GpuMatrix, HostMatrix, WeightFormat};
pub use shaders::Defines;
pub use step::Step;
pub use tensor::{DType, Element, Tensor};
pub use wgpu;
