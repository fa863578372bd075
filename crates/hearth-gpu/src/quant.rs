//! Weight formats the kernels consume, their CPU dequantisation (the reference), and GPU upload with
//! transparent splitting across storage bindings.
//!
//! Layouts (row-major, `cols % 32 == 0` for quantised formats; one group = 32 consecutive weights of a row):
//! - `Q4` (INT4 group 32, asymmetric, 5 bits/weight): `qs[rows][cols/8]` u32, weight `8j+i` of a row in
//!   bits `4i..4i+4` of word `j`; `sm[rows][cols/32]` u32 = f16 scale (low half) | f16 min (high half);
//!   `w = scale * q + min`. GGUF Q4_1 (`d*q+m`) repacks into it losslessly.
//! - `Q4S` (INT4 group 32, symmetric, 4.5 bits/weight: GGUF Q4_0's information): `qs` exactly as Q4;
//!   `d[rows][ceil(cols/64)]` u32, two f16 scales a word (group `2j` in the low half, `2j+1` in the
//!   high half; the high half of a row's last word is 0 when the row has an odd number of groups);
//!   `w = d * (q - 8)`. GGUF Q4_0 repacks into it losslessly (bit for bit, signed zeros included).
//! - `Q8` (symmetric): `qs[rows][cols/4]` u32, weight `4j+i` in byte `i` (two's complement);
//!   `d[rows][cols/32]` f32; `w = d * q`. GGUF Q8_0 repacks losslessly.
//! - `F32`: `qs[rows][cols]` holds the f32 bits; no scales.

use half::f16;

use crate::context::Gpu;
use crate::error::{GpuError, Result};

pub const GROUP: usize = 32;

/// Most threads [`GpuMatrix::upload_many`] uses: past a few, memory bandwidth is the limit.
#[cfg(not(target_arch = "wasm32"))]
const UPLOAD_THREADS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    F32,
    Q8,
    Q4,
    Q4S,
}

impl WeightFormat {
    /// Every format, for tests and for parsing [`WeightFormat::sym`] back.
    pub const ALL: [WeightFormat; 4] = [
        WeightFormat::F32,
        WeightFormat::Q8,
        WeightFormat::Q4,
        WeightFormat::Q4S,
    ];

    /// The symbol kernels see as the `WEIGHT` define.
    pub fn sym(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::Q8 => "q8",
            WeightFormat::Q4 => "q4",
            WeightFormat::Q4S => "q4s",
        }
    }
    /// u32 words of `qs` per row.
    pub fn qs_words(self, cols: usize) -> usize {
        match self {
            WeightFormat::F32 => cols,
            WeightFormat::Q8 => cols / 4,
            WeightFormat::Q4 | WeightFormat::Q4S => cols / 8,
        }
    }
    /// u32 words of scales per row.
    pub fn scale_words(self, cols: usize) -> usize {
        match self {
            WeightFormat::F32 => 0,
            WeightFormat::Q8 | WeightFormat::Q4 => cols / GROUP,
            WeightFormat::Q4S => cols.div_ceil(2 * GROUP),
        }
    }
    /// The format named by `sym` (see [`WeightFormat::sym`]).
    pub fn from_sym(sym: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.sym() == sym)
    }
}

/// A weight matrix `[rows, cols]` in host memory, in one of the formats above.
#[derive(Clone, Debug, PartialEq)]
pub struct HostMatrix {
    pub format: WeightFormat,
    pub rows: usize,
    pub cols: usize,
    /// `[rows, qs_words(cols)]`
    pub qs: Vec<u32>,
    /// `[rows, scale_words(cols)]`
    pub scales: Vec<u32>,
}

impl HostMatrix {
    /// A matrix from its parts, checked ([`HostMatrix::validate`]).
    pub fn new(
        format: WeightFormat,
        rows: usize,
        cols: usize,
        qs: Vec<u32>,
        scales: Vec<u32>,
    ) -> Result<Self> {
        let m = Self {
            format,
            rows,
            cols,
            qs,
            scales,
        };
        m.validate()?;
        Ok(m)
    }

    /// Checks that the buffers match the declared shape.
    pub fn validate(&self) -> Result<()> {
        let f = self.format;
        if f != WeightFormat::F32 && !self.cols.is_multiple_of(GROUP) {
            return Err(GpuError::Shape(format!(
                "{f:?} matrix with {} columns (must be a multiple of 32)",
                self.cols
            )));
        }
        let (q, s) = (
            self.rows * f.qs_words(self.cols),
            self.rows * f.scale_words(self.cols),
        );
        if self.qs.len() != q || self.scales.len() != s {
            return Err(GpuError::Shape(format!(
                "{f:?} [{}, {}] needs {q}+{s} words, has {}+{}",
                self.rows,
                self.cols,
                self.qs.len(),
                self.scales.len()
            )));
        }
        Ok(())
    }

    pub fn from_f32(rows: usize, cols: usize, w: &[f32]) -> Result<Self> {
        if w.len() != rows * cols {
            return Err(GpuError::Shape(format!(
                "[{rows}, {cols}] from {} values",
                w.len()
            )));
        }
        Ok(Self {
            format: WeightFormat::F32,
            rows,
            cols,
            qs: w.iter().map(|x| x.to_bits()).collect(),
            scales: vec![],
        })
    }

    /// Round-to-nearest asymmetric INT4, group 32. Scale and min are rounded to f16 first so the
    /// codes are chosen against the values the kernels will actually use.
    pub fn quantize_q4(rows: usize, cols: usize, w: &[f32]) -> Result<Self> {
        check_quant_shape(rows, cols, w.len())?;
        let mut qs = vec![0u32; rows * cols / 8];
        let mut scales = vec![0u32; rows * cols / GROUP];
        for (g, chunk) in w.chunks_exact(GROUP).enumerate() {
            let lo = chunk.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = chunk.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let min = f16::from_f32(lo);
            let scale = f16::from_f32((hi - min.to_f32()) / 15.0);
            let (s, m) = (scale.to_f32(), min.to_f32());
            for (i, &x) in chunk.iter().enumerate() {
                let q = if s > 0.0 {
                    ((x - m) / s).round().clamp(0.0, 15.0) as u32
                } else {
                    0
                };
                qs[g * 4 + i / 8] |= q << (4 * (i % 8));
            }
            scales[g] = pack_f16x2(scale, min);
        }
        Ok(Self {
            format: WeightFormat::Q4,
            rows,
            cols,
            qs,
            scales,
        })
    }

    /// Symmetric INT4, group 32, as llama.cpp's reference Q4_0 quantiser (`quantize_row_q4_0_ref`):
    /// the value of largest magnitude `max` (the first, on ties) sets `d = max / -8`, so it is code 0
    /// exactly and the other side reaches `+7d`; codes round half up. Unlike the reference, codes are
    /// chosen against `d` rounded to f16, the value the kernels use.
    pub fn quantize_q4s(rows: usize, cols: usize, w: &[f32]) -> Result<Self> {
        check_quant_shape(rows, cols, w.len())?;
        let f = WeightFormat::Q4S;
        let (groups, sw) = (cols / GROUP, f.scale_words(cols));
        let mut qs = vec![0u32; rows * cols / 8];
        let mut scales = vec![0u32; rows * sw];
        for (g, chunk) in w.chunks_exact(GROUP).enumerate() {
            let (mut amax, mut max) = (0f32, 0f32);
            for &x in chunk {
                if amax < x.abs() {
                    (amax, max) = (x.abs(), x);
                }
            }
            let d = f16::from_f32(max / -8.0);
            let df = d.to_f32();
            for (i, &x) in chunk.iter().enumerate() {
                let q = if df != 0.0 {
                    (x / df + 8.5).floor().clamp(0.0, 15.0) as u32
                } else {
                    8
                };
                qs[g * 4 + i / 8] |= q << (4 * (i % 8));
            }
            let (r, j) = (g / groups, g % groups);
            scales[r * sw + j / 2] |= (d.to_bits() as u32) << (16 * (j % 2));
        }
        Ok(Self {
            format: f,
            rows,
            cols,
            qs,
            scales,
        })
    }

    /// `w` (`[rows, cols]` f32) in `format`: [`HostMatrix::from_f32`] or the quantiser of that format.
    pub fn quantize(format: WeightFormat, rows: usize, cols: usize, w: &[f32]) -> Result<Self> {
        match format {
            WeightFormat::F32 => Self::from_f32(rows, cols, w),
            WeightFormat::Q8 => Self::quantize_q8(rows, cols, w),
            WeightFormat::Q4 => Self::quantize_q4(rows, cols, w),
            WeightFormat::Q4S => Self::quantize_q4s(rows, cols, w),
        }
    }

    /// Round-to-nearest symmetric INT8, group 32.
    pub fn quantize_q8(rows: usize, cols: usize, w: &[f32]) -> Result<Self> {
        check_quant_shape(rows, cols, w.len())?;
        let mut qs = vec![0u32; rows * cols / 4];
        let mut scales = vec![0u32; rows * cols / GROUP];
        for (g, chunk) in w.chunks_exact(GROUP).enumerate() {
            let amax = chunk.iter().fold(0f32, |a, x| a.max(x.abs()));
            let d = f16::from_f32(amax / 127.0).to_f32();
            for (i, &x) in chunk.iter().enumerate() {
                let q = if d > 0.0 {
                    (x / d).round().clamp(-127.0, 127.0) as i8
                } else {
                    0
                };
                qs[g * 8 + i / 4] |= (q as u8 as u32) << (8 * (i % 4));
            }
            scales[g] = d.to_bits();
        }
        Ok(Self {
            format: WeightFormat::Q8,
            rows,
            cols,
            qs,
            scales,
        })
    }

    /// Dequantises row `r` into `out` (`cols` values): the CPU reference of every weight read.
    pub fn dequantize_row_into(&self, r: usize, out: &mut [f32]) {
        let c = self.cols;
        let q = &self.qs[r * self.format.qs_words(c)..(r + 1) * self.format.qs_words(c)];
        let s = &self.scales[r * self.format.scale_words(c)..(r + 1) * self.format.scale_words(c)];
        match self.format {
            WeightFormat::F32 => out
                .iter_mut()
                .zip(q)
                .for_each(|(o, &b)| *o = f32::from_bits(b)),
            WeightFormat::Q4 => {
                for (i, o) in out.iter_mut().enumerate().take(c) {
                    let (scale, min) = unpack_f16x2(s[i / GROUP]);
                    let code = (q[i / 8] >> (4 * (i % 8))) & 0xF;
                    *o = scale * code as f32 + min;
                }
            }
            WeightFormat::Q4S => {
                for (i, o) in out.iter_mut().enumerate().take(c) {
                    let d = q4s_scale(s, i / GROUP);
                    let code = (q[i / 8] >> (4 * (i % 8))) & 0xF;
                    *o = d * (code as f32 - 8.0);
                }
            }
            WeightFormat::Q8 => {
                for (i, o) in out.iter_mut().enumerate().take(c) {
                    let code = ((q[i / 4] >> (8 * (i % 4))) & 0xFF) as u8 as i8;
                    *o = f32::from_bits(s[i / GROUP]) * code as f32;
                }
            }
        }
    }

    /// A Q4S matrix as Q4 (`min = -8d`), value for value; an error where `-8d` overflows f16 (no
    /// real weight comes near). Other formats are returned unchanged.
    pub fn q4s_as_q4(&self) -> Result<Self> {
        if self.format != WeightFormat::Q4S {
            return Ok(self.clone());
        }
        let (groups, sw) = (self.cols / GROUP, self.format.scale_words(self.cols));
        let mut scales = Vec::with_capacity(self.rows * groups);
        for r in 0..self.rows {
            let row = &self.scales[r * sw..(r + 1) * sw];
            for j in 0..groups {
                let d = q4s_scale(row, j);
                let min = f16::from_f32(-8.0 * d);
                if min.to_f32() != -8.0 * d {
                    return Err(GpuError::Shape(format!(
                        "Q4S scale {d} has no exact Q4 min (-8·d overflows f16)"
                    )));
                }
                scales.push(pack_f16x2(f16::from_f32(d), min));
            }
        }
        Ok(Self {
            format: WeightFormat::Q4,
            scales,
            ..self.clone()
        })
    }

    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        let mut v = vec![0.0; self.cols];
        self.dequantize_row_into(r, &mut v);
        v
    }

    /// The whole matrix as f32 `[rows, cols]`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut v = vec![0.0; self.rows * self.cols];
        for (r, row) in v.chunks_exact_mut(self.cols.max(1)).enumerate() {
            self.dequantize_row_into(r, row);
        }
        v
    }

    /// Stacks matrices with equal `cols` and format row-wise (Q/K/V as one projection, gate/up as one).
    /// Q4S parts stacked with Q4 ones are turned into Q4 first (see [`HostMatrix::q4s_as_q4`]), so a
    /// GGUF mixing Q4_0 and Q4_1 loads as it did before Q4S existed.
    pub fn concat_rows(parts: &[&HostMatrix]) -> Result<Self> {
        let first = parts
            .first()
            .ok_or_else(|| GpuError::Shape("concat of nothing".into()))?;
        let has = |f| parts.iter().any(|p| p.format == f);
        let promoted: Vec<HostMatrix>;
        let parts: Vec<&HostMatrix> = if has(WeightFormat::Q4S) && has(WeightFormat::Q4) {
            promoted = parts.iter().map(|p| p.q4s_as_q4()).collect::<Result<_>>()?;
            promoted.iter().collect()
        } else {
            parts.to_vec()
        };
        let mut out = HostMatrix {
            format: parts[0].format,
            rows: 0,
            cols: first.cols,
            qs: vec![],
            scales: vec![],
        };
        for p in parts {
            if p.cols != out.cols || p.format != out.format {
                return Err(GpuError::Shape(format!(
                    "concat {:?}[_, {}] with {:?}[_, {}]",
                    out.format, out.cols, p.format, p.cols
                )));
            }
            out.rows += p.rows;
            out.qs.extend_from_slice(&p.qs);
            out.scales.extend_from_slice(&p.scales);
        }
        Ok(out)
    }

    /// Bytes of weights and scales.
    pub fn bytes(&self) -> usize {
        4 * (self.qs.len() + self.scales.len())
    }
}

fn check_quant_shape(rows: usize, cols: usize, n: usize) -> Result<()> {
    if n != rows * cols || !cols.is_multiple_of(GROUP) {
        return Err(GpuError::Shape(format!(
            "cannot quantise [{rows}, {cols}] from {n} values (cols must be a multiple of 32)"
        )));
    }
    Ok(())
}

pub fn pack_f16x2(lo: f16, hi: f16) -> u32 {
    lo.to_bits() as u32 | ((hi.to_bits() as u32) << 16)
}

/// Scale of group `j` in a Q4S row's scale words (`j / 2`, low half for even `j`).
pub fn q4s_scale(row_scales: &[u32], j: usize) -> f32 {
    f16::from_bits((row_scales[j / 2] >> (16 * (j % 2))) as u16).to_f32()
}

pub fn unpack_f16x2(w: u32) -> (f32, f32) {
    (
        f16::from_bits(w as u16).to_f32(),
        f16::from_bits((w >> 16) as u16).to_f32(),
    )
}

/// Rows `row0..row0 + rows` of a matrix, each buffer within one storage binding.
#[derive(Debug)]
pub struct MatrixShard {
    pub row0: usize,
    pub rows: usize,
    pub qs: wgpu::Buffer,
    /// For F32 a 4-byte dummy, so every format binds the same layout.
    pub scales: wgpu::Buffer,
}

/// A weight matrix on the GPU, split by rows so no binding exceeds the device's limit.
#[derive(Debug)]
pub struct GpuMatrix {
    pub format: WeightFormat,
    pub rows: usize,
    pub cols: usize,
    pub shards: Vec<MatrixShard>,
}

impl GpuMatrix {
    /// Uploads `m`, split into shards of at most `gpu.max_binding()` bytes per buffer. Shards hold a
    /// multiple of 64 rows (when more than 64 rows fit) so kernel row tiles never straddle two shards.
    pub fn upload(gpu: &Gpu, label: &str, m: &HostMatrix) -> Result<Self> {
        Self::upload_rows(gpu, label, &[m])
    }

    /// Uploads `parts` stacked row-wise as one matrix (Q/K/V as one projection, gate/up as one),
    /// as [`HostMatrix::concat_rows`] then [`GpuMatrix::upload`] would, but copying each part's
    /// rows straight into the GPU buffers instead of into a concatenated host copy first.
    pub fn upload_rows(gpu: &Gpu, label: &str, parts: &[&HostMatrix]) -> Result<Self> {
        let first = parts
            .first()
            .ok_or_else(|| GpuError::Shape(format!("{label}: upload of nothing")))?;
        let (format, cols) = (first.format, first.cols);
        for p in parts {
            p.validate()?;
            if p.cols != cols || p.format != format {
                return Err(GpuError::Shape(format!(
                    "{label}: stacking {format:?}[_, {cols}] with {:?}[_, {}]",
                    p.format, p.cols
                )));
            }
        }
        let total_rows: usize = parts.iter().map(|p| p.rows).sum();
        let (qw, sw) = (format.qs_words(cols), format.scale_words(cols));
        let row_bytes = 4 * qw.max(sw) as u64;
        let fit = (gpu.max_binding() / row_bytes.max(1)) as usize;
        if fit == 0 {
            return Err(GpuError::TooLarge {
                what: format!("{label}: one row"),
                bytes: row_bytes,
                max: gpu.max_binding(),
            });
        }
        let per = if fit >= 64 { fit / 64 * 64 } else { fit }.min(total_rows.max(1));
        let mut shards = Vec::new();
        let mut row0 = 0;
        while row0 < total_rows {
            let rows = per.min(total_rows - row0);
            let range = row0..row0 + rows;
            shards.push(MatrixShard {
                row0,
                rows,
                qs: rows_buffer(
                    gpu,
                    &format!("{label}.qs[{row0}..]"),
                    parts,
                    range.clone(),
                    qw,
                    |p| &p.qs,
                ),
                scales: rows_buffer(
                    gpu,
                    &format!("{label}.scales[{row0}..]"),
                    parts,
                    range,
                    sw,
                    |p| &p.scales,
                ),
            });
            row0 += rows;
        }
        Ok(Self {
            format,
            rows: total_rows,
            cols,
            shards,
        })
    }

    /// [`GpuMatrix::upload_rows`] for each `(label, parts)` of `jobs`, in order. Natively the jobs
    /// are spread over a few threads: an upload is mostly a copy into mapped memory, and a model's
    /// gigabyte goes faster through several cores than through one. On wasm32 one after another.
    pub fn upload_many(gpu: &Gpu, jobs: &[(String, Vec<&HostMatrix>)]) -> Result<Vec<Self>> {
        let one =
            |(label, parts): &(String, Vec<&HostMatrix>)| Self::upload_rows(gpu, label, parts);
        #[cfg(not(target_arch = "wasm32"))]
        {
            use std::sync::atomic::{AtomicUsize, Ordering};
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, UPLOAD_THREADS)
                .min(jobs.len());
            if threads > 1 {
                // Each takes the next job: sizes vary (the embedding is several layers' worth).
                let next = AtomicUsize::new(0);
                let done: Vec<Vec<(usize, Result<Self>)>> = std::thread::scope(|s| {
                    let workers: Vec<_> = (0..threads)
                        .map(|_| {
                            s.spawn(|| {
                                let mut out = Vec::new();
                                loop {
                                    let i = next.fetch_add(1, Ordering::Relaxed);
                                    let Some(job) = jobs.get(i) else { break out };
                                    out.push((i, one(job)));
                                }
                            })
                        })
                        .collect();
                    workers.into_iter().filter_map(|w| w.join().ok()).collect()
                });
                let mut slots: Vec<Option<Result<Self>>> = jobs.iter().map(|_| None).collect();
                for (i, r) in done.into_iter().flatten() {
                    slots[i] = Some(r);
                }
                return slots
                    .into_iter()
                    .map(|r| {
                        r.unwrap_or_else(|| {
                            Err(GpuError::Validation("an upload thread panicked".into()))
                        })
                    })
                    .collect();
            }
        }
        jobs.iter().map(one).collect()
    }

    pub fn bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.qs.size() + s.scales.size())
            .sum()
    }
}

/// A storage buffer holding rows `rows` of `parts` stacked (`words` u32 per row, taken from each
/// part by `pick`), written through its mapping at creation. A matrix without scales (F32) gets a
/// 4-byte dummy, so every format binds the same layout.
fn rows_buffer(
    gpu: &Gpu,
    label: &str,
    parts: &[&HostMatrix],
    rows: std::ops::Range<usize>,
    words: usize,
    pick: impl Fn(&HostMatrix) -> &[u32],
) -> wgpu::Buffer {
    let bytes = 4 * (rows.len() * words).max(1) as u64;
    let buffer = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: true,
    });
    if words > 0 {
        // A buffer mapped at creation always has its whole range mapped.
        if let Ok(mut view) = buffer.get_mapped_range_mut(..) {
            let (mut part_row0, mut at) = (0, 0);
            for p in parts {
                let (lo, hi) = (rows.start.max(part_row0), rows.end.min(part_row0 + p.rows));
                if lo < hi {
                    let src = &pick(p)[(lo - part_row0) * words..(hi - part_row0) * words];
                    let src: &[u8] = bytemuck::cast_slice(src);
                    view.slice(at..at + src.len()).copy_from_slice(src);
                    at += src.len();
                }
                part_row0 += p.rows;
            }
        }
    }
    buffer.unmap();
    buffer
}

#[cfg(test)]
mod tests;
