//! Embedding gather (`shaders/embed.wgsl`): the rows of the token-embedding table for the tokens of
//! this step, read from the on-GPU token history so a decode step needs no upload.

use crate::elementwise::grid;
use crate::{Defines, Dispatch, GpuError, GpuMatrix, HostMatrix, KernelKey, Result, Step, Tensor};
use crate::{Gpu, WeightFormat};

const WG: u32 = 256;

/// `out[m, :]` = dequantised row `tokens[step.pos + m]` of `table` (`[V, D]`, any [`WeightFormat`]) for
/// `m in 0..m_rows`. One dispatch per shard; a shard writes only the rows whose id falls in its range,
/// and the last shard writes zeros for ids `>= V` (and for positions past the end of `tokens`).
pub async fn embed(
    gpu: &Gpu,
    table: &GpuMatrix,
    tokens: &Tensor<u32>,
    step: &Step,
    m_rows: usize,
    out: &Tensor<f32>,
) -> Result<Vec<Dispatch>> {
    let d = table.cols;
    if out.len() < m_rows * d {
        return Err(GpuError::Shape(format!(
            "embed: out has {} elements, {m_rows} rows of {d} need {}",
            out.len(),
            m_rows * d
        )));
    }
    if m_rows * d > u32::MAX as usize || table.rows > u32::MAX as usize {
        return Err(GpuError::Shape(format!(
            "embed: [{m_rows}, {d}] output or {} rows too large for u32 indexing",
            table.rows
        )));
    }
    let mut ds = Vec::with_capacity(table.shards.len());
    for shard in &table.shards {
        let defines = Defines::new()
            .sym("WEIGHT", table.format.sym())
            .u32("D", d as u32)
            .u32("V", table.rows as u32)
            .u32("ROW0", shard.row0 as u32)
            .u32("ROWS", shard.rows as u32)
            .flag("LAST", shard.row0 + shard.rows == table.rows)
            .u32("M", m_rows as u32)
            .u32("WG", WG);
        let k = gpu
            .kernel(KernelKey::new("embed", "embed", defines))
            .await?;
        let mut bindings = vec![
            step.binding(),
            tokens.binding(),
            out.binding(),
            shard.qs.as_entire_buffer_binding(),
        ];
        if table.format != WeightFormat::F32 {
            bindings.push(shard.scales.as_entire_buffer_binding());
        }
        ds.push(gpu.dispatch(&k, &bindings, grid(gpu, m_rows * d, WG))?);
    }
    Ok(ds)
}

/// CPU reference of [`embed`]: the rows of `ids` (`[ids.len(), cols]`), zeros for out-of-range ids.
pub fn embed_ref(table: &HostMatrix, ids: &[u32]) -> Vec<f32> {
    let mut out = vec![0.0; ids.len() * table.cols];
    for (row, &id) in out.chunks_exact_mut(table.cols.max(1)).zip(ids) {
        if (id as usize) < table.rows {
            table.dequantize_row_into(id as usize, row);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (conventions)
mod tests {
    use super::*;
    use crate::{testing::*, GpuOptions, Program};

    /// Gathers `m_rows` tokens at `pos` from a `[v, d]` table and compares with [`embed_ref`].
    fn check(gpu: &Gpu, format: WeightFormat, d: usize, min_shards: usize) {
        let (v, pos, m_rows) = (300, 5, 8);
        let w = random(11, v * d, 1.0);
        let host = HostMatrix::quantize(format, v, d, &w).unwrap();
        let table = GpuMatrix::upload(gpu, "table", &host).unwrap();
        assert!(
            table.shards.len() >= min_shards,
            "{format:?}: {} shards",
            table.shards.len()
        );
        // History: first/last rows, ids on shard boundaries, an out-of-range id, then the tail
        // beyond the tensor (pos + m past max_ctx reads as out of range).
        let hist: Vec<u32> = vec![9, 9, 9, 9, 9, 0, 299, 63, 64, 1000, 150, 17];
        let max_ctx = hist.len();
        let tokens = Tensor::from_slice(gpu, "tokens", &[max_ctx], &hist).unwrap();
        // Poison the output so rows the kernel should zero are really written.
        let out =
            Tensor::from_slice(gpu, "out", &[m_rows + 1, d], &vec![7.0; (m_rows + 1) * d]).unwrap();
        let step = Step::new(gpu);
        step.set(gpu, pos as u32, m_rows as u32);
        let mut p = Program::new();
        p.extend(block(embed(gpu, &table, &tokens, &step, m_rows, &out)).unwrap());
        gpu.submit(&p);
        let got = block(out.read(gpu)).unwrap();
        let ids: Vec<u32> = (pos..pos + m_rows)
            .map(|p| hist.get(p).copied().unwrap_or(u32::MAX))
            .collect();
        let mut want = embed_ref(&host, &ids);
        want.extend(vec![7.0; d]); // the row past m_rows is untouched
        assert_close(&format!("embed {format:?} d={d}"), &got, &want, 1e-6, 1e-6);
    }

    #[test]
    fn embed_matches_reference_one_shard() {
        let gpu = gpu();
        // d = 96: three groups a row (Q4S's last scale word holds one scale).
        for d in [64, 96] {
            for f in WeightFormat::ALL {
                check(&gpu, f, d, 1);
            }
        }
    }

    #[test]
    fn embed_matches_reference_across_shards() {
        // 4 KiB bindings: F32 rows are 256 B (16 rows a shard), Q8 64 B, Q4 and Q4S 32 B.
        let gpu = gpu_with(&GpuOptions {
            max_binding_override: Some(4096),
            ..GpuOptions::from_env()
        });
        for (f, min_shards) in WeightFormat::ALL.into_iter().zip([10, 4, 2, 2]) {
            check(&gpu, f, 64, min_shards);
        }
    }
}
