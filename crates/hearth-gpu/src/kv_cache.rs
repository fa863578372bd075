//! The key/value cache: per layer, rotated keys and plain values of every position so far.
//!
//! Layout per layer: `k`, `v` = `[max_len, n_kv_heads, head_dim]`, row-major, so one position's heads are
//! contiguous (the RoPE kernel writes a whole position at once) and one head's row is `head_dim`
//! contiguous elements (what the attention kernels read). Stored as f16 when the device has
//! `shader-f16` (half the memory and half the bandwidth of every decode step), else f32.

use half::f16;

use crate::{Gpu, GpuError, Result, Tensor};

/// One layer's buffers, in the element type the kernels were specialised for.
#[derive(Debug)]
enum KvBuffer {
    F16(Tensor<f16>),
    F32(Tensor<f32>),
}

impl KvBuffer {
    fn zeros(gpu: &Gpu, label: &str, n: usize, f16: bool) -> Result<Self> {
        Ok(if f16 {
            KvBuffer::F16(Tensor::zeros(gpu, label, &[n])?)
        } else {
            KvBuffer::F32(Tensor::zeros(gpu, label, &[n])?)
        })
    }
    fn binding(&self) -> wgpu::BufferBinding<'_> {
        match self {
            KvBuffer::F16(t) => t.binding(),
            KvBuffer::F32(t) => t.binding(),
        }
    }
    fn bytes(&self) -> u64 {
        match self {
            KvBuffer::F16(t) => t.bytes(),
            KvBuffer::F32(t) => t.bytes(),
        }
    }
    async fn read(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        Ok(match self {
            KvBuffer::F16(t) => t.read(gpu).await?.iter().map(|x| x.to_f32()).collect(),
            KvBuffer::F32(t) => t.read(gpu).await?,
        })
    }
}

/// Keys and values of every layer, `[max_len, n_kv_heads, head_dim]` each.
#[derive(Debug)]
pub struct KvCache {
    /// Per layer: (k, v).
    layers: Vec<(KvBuffer, KvBuffer)>,
    n_kv_heads: usize,
    head_dim: usize,
    max_len: usize,
    f16: bool,
}

impl KvCache {
    /// A zeroed cache, f16 when the device supports it.
    pub fn new(
        gpu: &Gpu,
        layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        max_len: usize,
    ) -> Result<Self> {
        Self::new_with(
            gpu,
            layers,
            n_kv_heads,
            head_dim,
            max_len,
            gpu.features().f16,
        )
    }

    /// A zeroed cache with an explicit element type; `f16 = true` needs `shader-f16`.
    pub fn new_with(
        gpu: &Gpu,
        layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        max_len: usize,
        f16: bool,
    ) -> Result<Self> {
        if layers == 0 || n_kv_heads == 0 || head_dim == 0 || max_len == 0 {
            return Err(GpuError::Shape(format!(
                "kv cache: {layers} layers × [{max_len}, {n_kv_heads}, {head_dim}] has an empty dimension"
            )));
        }
        if !head_dim.is_multiple_of(2) {
            return Err(GpuError::Shape(format!(
                "kv cache: head_dim {head_dim} is odd (RoPE rotates pairs of dims)"
            )));
        }
        if f16 && !gpu.features().f16 {
            return Err(GpuError::Shape(
                "kv cache: f16 requested but the device has no shader-f16".into(),
            ));
        }
        // Check before allocating anything, in u64 so huge requests cannot overflow.
        let elem = if f16 { 2u64 } else { 4 };
        let bytes = (max_len as u64)
            .checked_mul(n_kv_heads as u64)
            .and_then(|x| x.checked_mul(head_dim as u64))
            .and_then(|x| x.checked_mul(elem))
            .unwrap_or(u64::MAX);
        if bytes > gpu.max_binding() {
            return Err(GpuError::TooLarge {
                what: format!("kv cache layer [{max_len}, {n_kv_heads}, {head_dim}]"),
                bytes,
                max: gpu.max_binding(),
            });
        }
        let n = max_len * n_kv_heads * head_dim;
        let layers = (0..layers)
            .map(|l| {
                Ok((
                    KvBuffer::zeros(gpu, &format!("k_cache.{l}"), n, f16)?,
                    KvBuffer::zeros(gpu, &format!("v_cache.{l}"), n, f16)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            n_kv_heads,
            head_dim,
            max_len,
            f16,
        })
    }

    pub fn is_f16(&self) -> bool {
        self.f16
    }
    pub fn max_len(&self) -> usize {
        self.max_len
    }
    pub fn layers(&self) -> usize {
        self.layers.len()
    }
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }
    /// GPU memory of the whole cache.
    pub fn bytes(&self) -> u64 {
        self.layers.iter().map(|(k, v)| k.bytes() + v.bytes()).sum()
    }

    fn layer(&self, layer: usize) -> Result<&(KvBuffer, KvBuffer)> {
        self.layers.get(layer).ok_or_else(|| {
            GpuError::Shape(format!("kv cache: layer {layer} of {}", self.layers.len()))
        })
    }
    /// Layer `layer`'s keys as a binding.
    pub fn k_binding(&self, layer: usize) -> Result<wgpu::BufferBinding<'_>> {
        Ok(self.layer(layer)?.0.binding())
    }
    /// Layer `layer`'s values as a binding.
    pub fn v_binding(&self, layer: usize) -> Result<wgpu::BufferBinding<'_>> {
        Ok(self.layer(layer)?.1.binding())
    }

    /// Overwrites positions `pos..pos + n` of layer `layer` with `k` and `v`, each
    /// `[n, n_kv_heads, head_dim]` f32 (rounded to f16 for an f16 cache). For tests and restoring a
    /// saved prefix; the forward pass writes through [`crate::rope::rope_and_store`].
    pub fn write_positions(
        &self,
        gpu: &Gpu,
        layer: usize,
        pos: usize,
        k: &[f32],
        v: &[f32],
    ) -> Result<()> {
        let row = self.n_kv_heads * self.head_dim;
        let n = k.len() / row;
        if k.len() != v.len() || !k.len().is_multiple_of(row) || pos + n > self.max_len {
            return Err(GpuError::Shape(format!(
                "kv cache write of {} + {} values at position {pos} (rows of {row}, {} positions)",
                k.len(),
                v.len(),
                self.max_len
            )));
        }
        let (kb, vb) = self.layer(layer)?;
        for (buf, data) in [(kb, k), (vb, v)] {
            match buf {
                // Offsets stay 4-byte aligned: head_dim is even, so a row is whole u32 words.
                KvBuffer::F16(t) => {
                    let h: Vec<f16> = data.iter().map(|&x| f16::from_f32(x)).collect();
                    t.write_at(gpu, pos * row, &h)?
                }
                KvBuffer::F32(t) => t.write_at(gpu, pos * row, data)?,
            }
        }
        Ok(())
    }

    /// Reads one layer back as f32 `(k, v)`, each `[max_len, n_kv_heads, head_dim]` (tests, debugging).
    pub async fn read_layer(&self, gpu: &Gpu, layer: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let (k, v) = self.layer(layer)?;
        Ok((k.read(gpu).await?, v.read(gpu).await?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (conventions)
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::GpuOptions;

    #[test]
    fn kv_cache_sizes_types_and_limits() {
        let gpu = gpu();
        let c = KvCache::new_with(&gpu, 2, 3, 8, 10, false).unwrap();
        assert!(!c.is_f16());
        assert_eq!(c.bytes(), 2 * 2 * 10 * 3 * 8 * 4);
        let (k, v) = block(c.read_layer(&gpu, 1)).unwrap();
        assert_eq!((k.len(), v.len()), (240, 240));
        assert!(block(c.read_layer(&gpu, 2)).is_err());
        if gpu.features().f16 {
            let c = KvCache::new(&gpu, 2, 3, 8, 10).unwrap();
            assert!(c.is_f16());
            assert_eq!(c.bytes(), 2 * 2 * 10 * 3 * 8 * 2);
        }
        assert!(KvCache::new(&gpu, 1, 0, 8, 10).is_err());
        assert!(KvCache::new(&gpu, 1, 1, 7, 10).is_err());

        let small = gpu_with(&GpuOptions {
            allow_f16: false,
            max_binding_override: Some(1 << 12),
            ..GpuOptions::default()
        });
        assert!(KvCache::new_with(&small, 1, 1, 8, 10, true).is_err());
        assert!(matches!(
            KvCache::new(&small, 1, 2, 64, 64),
            Err(GpuError::TooLarge { .. })
        ));
        assert!(matches!(
            KvCache::new(&small, 1, usize::MAX / 2, 64, 64),
            Err(GpuError::TooLarge { .. })
        ));
    }
}
