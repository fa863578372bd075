//! Compute pipelines cached by their full specialisation, and recorded dispatch lists.
//!
//! Kernels are compiled once per [`KernelKey`] (family, entry point, every define). A model builds its
//! forward pass once as a [`Program`] — pipelines with their bind groups already made — and replays it
//! for each step, so a decode step costs one command buffer and no per-dispatch allocation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::context::Gpu;
use crate::error::{GpuError, Result};
use crate::shaders::{self, Defines};

/// The full specialisation of a kernel: what the cache is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelKey {
    pub family: &'static str,
    pub entry: &'static str,
    pub defines: Defines,
}

impl KernelKey {
    pub fn new(family: &'static str, entry: &'static str, defines: Defines) -> Self {
        Self {
            family,
            entry,
            defines,
        }
    }
}

/// A compiled compute pipeline and the layout its bind groups must follow.
#[derive(Debug)]
pub struct Kernel {
    pub key: KernelKey,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

#[derive(Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<KernelKey, Arc<Kernel>>>,
    /// Nanoseconds spent creating pipelines (natively; cold-start timings report it).
    compile_ns: AtomicU64,
}

impl PipelineCache {
    /// Seconds spent creating pipelines so far: natively, where the driver compiles when the
    /// pipeline is created (lavapipe defers part of it to the first dispatch); 0 on wasm32.
    pub fn compile_seconds(&self) -> f64 {
        self.compile_ns.load(Ordering::Relaxed) as f64 / 1e9
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Gpu {
    /// The pipeline for `key`, compiled on first use. Compile errors come back as
    /// [`GpuError::Shader`] with the driver's message, never as a panic.
    pub async fn kernel(&self, key: KernelKey) -> Result<Arc<Kernel>> {
        let cache = self.pipelines();
        if let Some(k) = cache.map.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(k);
        }
        #[cfg(not(target_arch = "wasm32"))]
        let start = std::time::Instant::now();
        let src = shaders::preprocess(key.family, shaders::source(key.family)?, &key.defines)?;
        let device = self.device();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = shader_module(
            device,
            &key,
            wgpu::ShaderModuleDescriptor {
                label: Some(key.family),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            },
        );
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key.family),
            layout: None,
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = scope.pop().await {
            return Err(GpuError::Shader {
                family: format!("{}::{}", key.family, key.entry),
                message: e.to_string(),
            });
        }
        let layout = pipeline.get_bind_group_layout(0);
        #[cfg(not(target_arch = "wasm32"))]
        cache.compile_ns.fetch_add(
            u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let k = Arc::new(Kernel {
            key: key.clone(),
            pipeline,
            layout,
        });
        if let Ok(mut m) = cache.map.lock() {
            m.insert(key, k.clone());
        }
        Ok(k)
    }

    /// Binds `buffers` to bindings 0, 1, 2… of group 0 and records one dispatch.
    pub fn dispatch(
        &self,
        kernel: &Arc<Kernel>,
        buffers: &[wgpu::BufferBinding<'_>],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let max = self.limits().max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(GpuError::Shape(format!(
                "{}: {workgroups:?} workgroups exceed the limit of {max} per dimension",
                kernel.key.family
            )));
        }
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(b.clone()),
            })
            .collect();
        let bind_group = self.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.key.family),
            layout: &kernel.layout,
            entries: &entries,
        });
        Ok(Dispatch {
            kernel: kernel.clone(),
            bind_group,
            workgroups,
            tag: "",
            weight_bytes: 0,
        })
    }
}

/// One recorded kernel launch.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub kernel: Arc<Kernel>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// What the dispatch does in its model ("qkv", "attention"…), for profiles; "" if untagged.
    pub tag: &'static str,
    /// Weight bytes the dispatch must stream (mat-vec / matmul), for bandwidth in profiles.
    pub weight_bytes: u64,
}

impl Dispatch {
    /// Notes the weight bytes this dispatch reads (see [`crate::profile`]).
    pub fn reading(mut self, bytes: u64) -> Self {
        self.weight_bytes = bytes;
        self
    }
}

/// A list of dispatches replayed in order inside one compute pass. wgpu inserts the barriers between
/// dependent dispatches.
#[derive(Debug, Default)]
pub struct Program {
    pub dispatches: Vec<Dispatch>,
}

impl Program {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, d: Dispatch) {
        self.dispatches.push(d);
    }
    pub fn extend(&mut self, ds: impl IntoIterator<Item = Dispatch>) {
        self.dispatches.extend(ds);
    }
    /// Like [`Program::extend`], naming what the dispatches do for profiles.
    pub fn tagged(&mut self, tag: &'static str, ds: impl IntoIterator<Item = Dispatch>) {
        self.dispatches
            .extend(ds.into_iter().map(|d| Dispatch { tag, ..d }));
    }
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }
    pub fn append(&mut self, other: Program) {
        self.dispatches.extend(other.dispatches);
    }
    pub fn len(&self) -> usize {
        self.dispatches.len()
    }
    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }

    /// Records every dispatch into `pass`.
    pub fn encode_into(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            if d.workgroups.contains(&0) {
                continue;
            }
            pass.set_pipeline(&d.kernel.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
        }
    }

    /// Records the program in its own compute pass of `encoder`.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("hearth"),
            timestamp_writes: None,
        });
        self.encode_into(&mut pass);
    }
}

impl Gpu {
    /// Submits `program` as one command buffer.
    pub fn submit(&self, program: &Program) {
        let mut enc = self
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("hearth"),
            });
        program.encode(&mut enc);
        self.queue().submit([enc.finish()]);
    }
}

/// Kernels compiled natively without naga's runtime checks (its clamp on every index and its
/// counter in every loop). Measured one entry at a time on an H200 (docs/benchmarks.md): the loop
/// counters cost the tiled matmul 10× (prefill 960 → 10,500 tok/s at 512 tokens; MiniLM 370 →
/// 3,270 inputs/s) and the decode attention 6–13 %, while the mat-vec and sampling kernels ran
/// faster with the checks on (the driver schedules those loops differently), so they keep them.
#[cfg(not(target_arch = "wasm32"))]
const UNCHECKED: &[&str] = &[
    "matmul::matmul",
    "matmul_f16::stage_x",
    "matmul_f16::stage_w",
    "matmul_f16::gemm",
    "attention::prefill",
    "attention::decode",
    "norm::norm",
    "norm::pool",
];

/// Whether `family::entry` is compiled without runtime checks: [`UNCHECKED`], or the comma list
/// in `HEARTH_UNCHECKED` (`all`, `none`, or `family::entry` names) for measurements and debugging.
#[cfg(not(target_arch = "wasm32"))]
fn unchecked(family: &str, entry: &str) -> bool {
    let name = format!("{family}::{entry}");
    match std::env::var("HEARTH_UNCHECKED") {
        Ok(list) => list.split(',').any(|n| n == "all" || n == name),
        Err(_) => UNCHECKED.contains(&name.as_str()),
    }
}

/// Every kernel keeps its indices in bounds by construction (rows past the end are clamped in the
/// WGSL, the launchers check shapes, and each kernel is tested against its CPU reference), so the
/// checks can go where they cost. Browsers always enforce their own.
#[allow(unsafe_code)] // the one unsafe call in the workspace, argued above
fn shader_module(
    device: &wgpu::Device,
    key: &KernelKey,
    desc: wgpu::ShaderModuleDescriptor<'_>,
) -> wgpu::ShaderModule {
    #[cfg(not(target_arch = "wasm32"))]
    if unchecked(key.family, key.entry) {
        // SAFETY: see above; the shaders are our own, and out-of-bounds accesses are excluded by
        // the kernels' index arithmetic and their launchers' shape checks.
        return unsafe {
            device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
        };
    }
    #[cfg(target_arch = "wasm32")]
    let _ = key;
    device.create_shader_module(desc)
}
