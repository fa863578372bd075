//! The GPU context: adapter and device with their real limits, feature flags that select kernel
//! variants at run time, and the pipeline cache. One code path natively and on WebGPU.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{GpuError, Result};
use crate::pipeline::PipelineCache;

/// Optional features the kernels can use, as granted by the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuFeatures {
    /// `shader-f16`: f16 storage and arithmetic in WGSL (SwiftShader has none).
    pub f16: bool,
    /// Subgroup operations (`subgroupAdd` and friends).
    pub subgroups: bool,
    /// Smallest subgroup size the adapter may use (kernels must be correct for any size in range).
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    /// Timestamp queries (per-kernel profiling).
    pub timestamps: bool,
    /// Cooperative matrices (tensor cores) with f16 16×16×16 tiles, f32 accumulation, subgroups of
    /// exactly 32: the prefill mat-mul of matmul_f16.wgsl. Native only (wgpu's experimental feature).
    pub coop: bool,
    /// The mat-vec rounds activations to int8 and multiplies with `dot4I8Packed` (core WGSL; naga
    /// emits SPIR-V's packed integer dot product where the device has it, a polyfill elsewhere).
    /// Off only by request (`HEARTH_NO_INT8=1`), to compare with the f32-activation path.
    pub int8_dot: bool,
}

/// How to create the context. Tests use the overrides to exercise fallbacks on any adapter.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    pub allow_f16: bool,
    pub allow_subgroups: bool,
    /// Pretend the adapter allows at most this many bytes per storage binding (tests splitting).
    pub max_binding_override: Option<u64>,
    /// Prefer a low-power adapter (integrated GPU) over a discrete one.
    pub low_power: bool,
    pub allow_coop: bool,
    pub allow_int8_dot: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        Self {
            allow_f16: true,
            allow_subgroups: true,
            max_binding_override: None,
            low_power: false,
            allow_coop: true,
            allow_int8_dot: true,
        }
    }
}

impl GpuOptions {
    /// Defaults, overridden by `HEARTH_NO_F16=1`, `HEARTH_NO_SUBGROUPS=1`, `HEARTH_NO_COOP=1`, `HEARTH_NO_INT8=1` and
    /// `HEARTH_MAX_BINDING=<bytes>` (native only), so every fallback can be forced from outside.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_env() -> Self {
        let on = |k: &str| std::env::var(k).map(|v| v == "1").unwrap_or(false);
        Self {
            allow_f16: !on("HEARTH_NO_F16"),
            allow_subgroups: !on("HEARTH_NO_SUBGROUPS"),
            allow_coop: !on("HEARTH_NO_COOP"),
            allow_int8_dot: !on("HEARTH_NO_INT8"),
            max_binding_override: std::env::var("HEARTH_MAX_BINDING")
                .ok()
                .and_then(|v| v.parse().ok()),
            ..Self::default()
        }
    }

    /// The web has no environment: the defaults.
    #[cfg(target_arch = "wasm32")]
    pub fn from_env() -> Self {
        Self::default()
    }
}

/// A cheap-to-clone handle on one GPU device.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    features: GpuFeatures,
    max_binding: u64,
    pipelines: PipelineCache,
    /// Scratch buffers shared by every program on this device, by name (see [`Gpu::scratch`]).
    scratch: Mutex<HashMap<&'static str, Arc<wgpu::Buffer>>>,
    /// Errors no error scope caught (device loss, out-of-memory in a submit…), kept for `check`.
    uncaptured: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.inner.info.name)
            .field("backend", &self.inner.info.backend)
            .field("features", &self.inner.features)
            .field("max_binding", &self.inner.max_binding)
            .finish()
    }
}

/// On the web, a missing `navigator.gpu` makes wgpu panic inside `Instance::new`; a panic there is
/// not a rejected promise, so look first.
#[cfg(target_arch = "wasm32")]
fn webgpu_present() -> bool {
    use wasm_bindgen::JsValue;
    let global = js_sys::global();
    let nav = js_sys::Reflect::get(&global, &JsValue::from_str("navigator"))
        .unwrap_or(JsValue::UNDEFINED);
    if nav.is_undefined() || nav.is_null() {
        return false;
    }
    let gpu = js_sys::Reflect::get(&nav, &JsValue::from_str("gpu")).unwrap_or(JsValue::UNDEFINED);
    !(gpu.is_undefined() || gpu.is_null())
}

impl Gpu {
    /// Creates a device on the best adapter, requesting the adapter's real limits.
    pub async fn new(opts: &GpuOptions) -> Result<Self> {
        #[cfg(target_arch = "wasm32")]
        if !webgpu_present() {
            return Err(GpuError::NoWebGpu);
        }
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        #[cfg(not(target_arch = "wasm32"))]
        {
            // Vulkan/Metal/DX12 first; GL only as a last resort (no compute on many GL drivers).
            desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        }
        #[cfg(target_arch = "wasm32")]
        {
            desc.backends = wgpu::Backends::BROWSER_WEBGPU;
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: if opts.low_power {
                    wgpu::PowerPreference::LowPower
                } else {
                    wgpu::PowerPreference::HighPerformance
                },
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        Self::from_adapter(adapter, opts).await
    }

    /// Creates the device on a given adapter.
    pub async fn from_adapter(adapter: wgpu::Adapter, opts: &GpuOptions) -> Result<Self> {
        let info = adapter.get_info();
        let available = adapter.features();
        let mut wanted = wgpu::Features::empty();
        let f16 = opts.allow_f16 && available.contains(wgpu::Features::SHADER_F16);
        if f16 {
            wanted |= wgpu::Features::SHADER_F16;
        }
        let subgroups = opts.allow_subgroups && available.contains(wgpu::Features::SUBGROUP);
        if subgroups {
            wanted |= wgpu::Features::SUBGROUP;
        }
        let timestamps = available.contains(wgpu::Features::TIMESTAMP_QUERY);
        if timestamps {
            wanted |= wgpu::Features::TIMESTAMP_QUERY;
            // Natively, timestamps inside compute passes give per-kernel times without splitting passes.
            if available.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES) {
                wanted |= wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
            }
        }
        let coop = opts.allow_coop && f16 && subgroups && coop_tiles(&adapter, &info);
        if coop {
            wanted |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        }
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("hearth"),
                required_features: wanted,
                required_limits: limits.clone(),
                experimental_features: if coop {
                    experimental()
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::RequestDevice(e.to_string()))?;

        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));

        let device_binding = limits.max_storage_buffer_binding_size;
        let max_binding = opts
            .max_binding_override
            .map_or(device_binding, |o| o.min(device_binding))
            .min(limits.max_buffer_size)
            // Bindings must stay multiples of 4 bytes.
            & !3;
        let features = GpuFeatures {
            f16,
            subgroups,
            subgroup_min_size: if subgroups {
                info.subgroup_min_size.max(1)
            } else {
                1
            },
            subgroup_max_size: if subgroups {
                info.subgroup_max_size.max(1)
            } else {
                1
            },
            timestamps,
            coop,
            int8_dot: opts.allow_int8_dot,
        };
        // On wasm32 wgpu's handles are neither Send nor Sync; the Arc only shares them on one thread.
        #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
        let inner = Arc::new(Inner {
            device,
            queue,
            info,
            limits,
            features,
            max_binding,
            pipelines: PipelineCache::default(),
            scratch: Mutex::new(HashMap::new()),
            uncaptured,
        });
        Ok(Self { inner })
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }
    pub fn features(&self) -> GpuFeatures {
        self.inner.features
    }
    /// Largest storage binding in bytes (after any override); larger tensors are split.
    pub fn max_binding(&self) -> u64 {
        self.inner.max_binding
    }
    pub fn pipelines(&self) -> &PipelineCache {
        &self.inner.pipelines
    }
    /// A storage buffer of at least `bytes` for intermediate values that live only from one dispatch
    /// to the next within a program (the tensor-core mat-mul's f16 operands). Every program on this
    /// device shares the buffer of a name: programs run one after the other, and wgpu orders the
    /// dispatches that write and read it. A larger request replaces it with a larger buffer (programs
    /// recorded earlier keep the old one alive).
    pub fn scratch(&self, name: &'static str, bytes: u64) -> Result<Arc<wgpu::Buffer>> {
        let bytes = bytes.max(16).next_multiple_of(16);
        if bytes > self.max_binding() {
            return Err(GpuError::TooLarge {
                what: format!("scratch `{name}`"),
                bytes,
                max: self.max_binding(),
            });
        }
        let mut map = self
            .inner
            .scratch
            .lock()
            .map_err(|_| GpuError::Validation("poisoned".into()))?;
        if let Some(b) = map.get(name).filter(|b| b.size() >= bytes) {
            return Ok(b.clone());
        }
        // On wasm32 wgpu's handles are neither Send nor Sync; the Arc only shares them on one thread.
        #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
        let b = Arc::new(self.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        }));
        map.insert(name, b.clone());
        Ok(b)
    }

    /// Bytes held by the current scratch buffers (GPU memory reports).
    pub fn scratch_bytes(&self) -> u64 {
        self.inner
            .scratch
            .lock()
            .map(|m| m.values().map(|b| b.size()).sum())
            .unwrap_or(0)
    }

    /// One line naming the adapter, for logs and benchmark records.
    pub fn describe(&self) -> String {
        let i = &self.inner.info;
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            i.name, i.backend, i.device_type, i.driver, i.driver_info
        )
    }

    /// Returns the first error that escaped every error scope since the last call, if any.
    pub fn take_uncaptured_error(&self) -> Result<()> {
        let mut v = self
            .inner
            .uncaptured
            .lock()
            .map_err(|_| GpuError::Validation("poisoned".into()))?;
        let first = v.drain(..).next();
        drop(v);
        match first {
            None => Ok(()),
            Some(e) if e.contains("out of memory") || e.contains("OutOfMemory") => {
                Err(GpuError::OutOfMemory(e))
            }
            Some(e) if e.to_lowercase().contains("lost") => Err(GpuError::DeviceLost(e)),
            Some(e) => Err(GpuError::Validation(e)),
        }
    }

    /// Waits (natively) until submitted work is done; on the web the browser drives the queue.
    pub fn poll_wait(&self) {
        self.poll_until(None);
    }

    /// Waits (natively) until `submission` (or, given `None`, all submitted work) is done.
    pub fn poll_until(&self, submission: Option<wgpu::SubmissionIndex>) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = self.inner.device.poll(wgpu::PollType::Wait {
                submission_index: submission,
                timeout: None,
            });
        }
        #[cfg(target_arch = "wasm32")]
        let _ = submission;
    }
}

/// Whether the adapter multiplies f16 16×16×16 tiles into f32 per subgroup, with subgroups of
/// exactly 32 (matmul_f16.wgsl's `gemm` gives each subgroup of 32 its own tiles).
#[cfg(not(target_arch = "wasm32"))]
fn coop_tiles(adapter: &wgpu::Adapter, info: &wgpu::AdapterInfo) -> bool {
    use wgpu::CooperativeScalarType as T;
    adapter
        .features()
        .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
        && info.subgroup_min_size == 32
        && info.subgroup_max_size == 32
        // The smallest tensor-core mat-mul workgroup (2 × 2 subgroups, matmul/coop.rs).
        && adapter.limits().max_compute_workgroup_storage_size >= 34_816
        && adapter.cooperative_matrix_properties().iter().any(|p| {
            (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
                && p.ab_type == T::F16
                && p.cr_type == T::F32
        })
}

#[cfg(target_arch = "wasm32")]
fn coop_tiles(_: &wgpu::Adapter, _: &wgpu::AdapterInfo) -> bool {
    false
}

/// wgpu's consent token for its experimental features, taken only for cooperative matrices.
#[allow(unsafe_code)] // wgpu marks its experimental features unsafe to opt into
fn experimental() -> wgpu::ExperimentalFeatures {
    // SAFETY: only EXPERIMENTAL_COOPERATIVE_MATRIX is requested under it, and only matmul_f16.wgsl
    // uses it: its tile loads read scratch buffers allocated padded to whole tiles, its tile stores
    // stay inside a workgroup array sized for them, and the path is checked against the CPU
    // reference wherever the adapter offers it (matmul tests).
    unsafe { wgpu::ExperimentalFeatures::enabled() }
}
