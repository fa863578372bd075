//! Typed GPU tensors and async readback.
//!
//! Activations are f32 (or f16 where the device has `shader-f16` and a kernel asks for it). Readback is
//! async only: it maps a staging buffer and awaits the callback, which works the same natively (where we
//! poll the device) and in a browser (where the event loop drives it).

use std::marker::PhantomData;
use std::sync::Arc;

use bytemuck::Pod;
use half::f16;

use crate::context::Gpu;
use crate::error::{GpuError, Result};

/// Element types a tensor may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    U32,
    I32,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F16 => 2,
            _ => 4,
        }
    }
}

/// Rust types that map onto a [`DType`].
pub trait Element: Pod + Send + Sync + 'static {
    const DTYPE: DType;
}
impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for f16 {
    const DTYPE: DType = DType::F16;
}
impl Element for u32 {
    const DTYPE: DType = DType::U32;
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
}

/// A storage buffer holding `shape.iter().product()` elements of `T`, row-major.
#[derive(Clone, Debug)]
pub struct Tensor<T: Element> {
    buffer: Arc<wgpu::Buffer>,
    shape: Vec<usize>,
    _t: PhantomData<T>,
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Bytes rounded up to a multiple of 4 (WebGPU's copy and binding granularity), never zero.
fn padded(bytes: usize) -> u64 {
    (bytes.max(4) as u64).div_ceil(4) * 4
}

fn check_size(gpu: &Gpu, what: &str, bytes: u64) -> Result<()> {
    if bytes > gpu.max_binding() {
        return Err(GpuError::TooLarge {
            what: what.to_string(),
            bytes,
            max: gpu.max_binding(),
        });
    }
    Ok(())
}

impl<T: Element> Tensor<T> {
    /// A zero-filled tensor.
    pub fn zeros(gpu: &Gpu, label: &str, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        let bytes = padded(n * size_of::<T>());
        check_size(gpu, label, bytes)?;
        let buffer = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: USAGE,
            mapped_at_creation: false,
        });
        // On wasm32 wgpu's buffers are not Send/Sync; the Arc only shares them on one thread.
        #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
        let buffer = Arc::new(buffer);
        Ok(Self {
            buffer,
            shape: shape.to_vec(),
            _t: PhantomData,
        })
    }

    /// A tensor initialised from `data` (which must have `shape`'s element count).
    pub fn from_slice(gpu: &Gpu, label: &str, shape: &[usize], data: &[T]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(GpuError::Shape(format!(
                "{label}: shape {shape:?} needs {n} elements, got {}",
                data.len()
            )));
        }
        let t = Self::zeros(gpu, label, shape)?;
        t.write(gpu, data)?;
        Ok(t)
    }

    /// Overwrites the start of the tensor with `data`.
    pub fn write(&self, gpu: &Gpu, data: &[T]) -> Result<()> {
        self.write_at(gpu, 0, data)
    }

    /// Overwrites elements `offset..offset + data.len()`.
    pub fn write_at(&self, gpu: &Gpu, offset: usize, data: &[T]) -> Result<()> {
        if offset + data.len() > self.len() {
            return Err(GpuError::Shape(format!(
                "write of {} at {offset} into {} elements",
                data.len(),
                self.len()
            )));
        }
        let mut bytes = bytemuck::cast_slice::<T, u8>(data).to_vec();
        bytes.resize(padded(bytes.len()) as usize, 0);
        if !data.is_empty() {
            gpu.queue()
                .write_buffer(&self.buffer, (offset * size_of::<T>()) as u64, &bytes);
        }
        Ok(())
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
    /// The whole tensor as a binding.
    pub fn binding(&self) -> wgpu::BufferBinding<'_> {
        self.buffer.as_entire_buffer_binding()
    }
    /// Bytes the tensor occupies on the GPU.
    pub fn bytes(&self) -> u64 {
        self.buffer.size()
    }

    /// Reads the tensor back (async: awaits the GPU).
    pub async fn read(&self, gpu: &Gpu) -> Result<Vec<T>> {
        let bytes = read_buffer(gpu, &self.buffer, 0, padded(self.len() * size_of::<T>())).await?;
        let mut out = bytemuck::pod_collect_to_vec::<u8, T>(&bytes);
        out.truncate(self.len());
        Ok(out)
    }
}

/// Copies `size` bytes at `offset` of `buffer` to the host.
pub async fn read_buffer(
    gpu: &Gpu,
    buffer: &wgpu::Buffer,
    offset: u64,
    size: u64,
) -> Result<Vec<u8>> {
    let staging = staging(gpu, "readback", size);
    let mut enc = gpu.device().create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
    gpu.queue().submit([enc.finish()]);
    map_read(gpu, &staging, size).await
}

/// A host-readable buffer of `size` bytes to copy GPU results into (then [`map_read`] it).
pub fn staging(gpu: &Gpu, label: &str, size: u64) -> wgpu::Buffer {
    gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Maps `staging` (a MAP_READ buffer whose copy was already submitted) and returns its first `size` bytes.
pub async fn map_read(gpu: &Gpu, staging: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
    map_read_after(gpu, staging, size, None).await
}

/// [`map_read`] that natively waits only for `submission` (the one holding the copy), not for
/// work submitted after it: a decode step already queued behind the copy keeps the GPU busy.
pub async fn map_read_after(
    gpu: &Gpu,
    staging: &wgpu::Buffer,
    size: u64,
    submission: Option<wgpu::SubmissionIndex>,
) -> Result<Vec<u8>> {
    let (tx, rx) = futures_channel::oneshot::channel();
    staging
        .slice(..size)
        .map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
    gpu.poll_until(submission);
    rx.await
        .map_err(|_| GpuError::Readback("the map callback was dropped (device lost?)".into()))?
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    let data = {
        let view = staging
            .slice(..size)
            .get_mapped_range()
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        view.to_vec()
    };
    staging.unmap();
    gpu.take_uncaptured_error()?;
    Ok(data)
}

/// A small uniform buffer of `u32`/`f32` words (kernel parameters).
pub fn uniform(gpu: &Gpu, label: &str, words: &[u32]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    let mut data = words.to_vec();
    // Uniform structs are 16-byte aligned.
    data.resize(words.len().div_ceil(4).max(1) * 4, 0);
    gpu.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(&data),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
}
