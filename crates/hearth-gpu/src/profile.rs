//! Where a [`Program`]'s GPU time goes: one timestamp before every dispatch and one after the last.
//!
//! With `TIMESTAMP_QUERY_INSIDE_PASSES` (native Vulkan/Metal/DX12) the timestamps go between the
//! dispatches of the one compute pass the program always runs in, so the profile disturbs nothing but
//! the timestamp writes. Without it (WebGPU exposes only pass-boundary timestamps) every dispatch runs
//! in its own pass with begin/end timestamps, which adds the pass boundaries' cost to each kernel.

use crate::context::Gpu;
use crate::error::{GpuError, Result};
use crate::pipeline::Program;

/// One dispatch's GPU time.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The dispatch's tag, or `family::entry` when it has none.
    pub name: String,
    /// `family::entry` of the kernel.
    pub kernel: String,
    pub workgroups: [u32; 3],
    pub ns: f64,
    /// Weight bytes the dispatch streams (0 where not noted).
    pub weight_bytes: u64,
}

/// Whether the profile splits passes (see the module doc).
pub fn per_dispatch_passes(gpu: &Gpu) -> bool {
    !gpu.device()
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
}

impl Program {
    /// Runs the program once (after `before`, recorded into the same command buffer, e.g. a step
    /// upload) and returns each non-empty dispatch's GPU time. Errors where the device has no
    /// timestamp queries.
    pub async fn profile(
        &self,
        gpu: &Gpu,
        before: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> Result<Vec<KernelTime>> {
        if !gpu.features().timestamps {
            return Err(GpuError::Unsupported(
                "this adapter has no timestamp queries".into(),
            ));
        }
        let live: Vec<_> = self
            .dispatches()
            .iter()
            .filter(|d| !d.workgroups.contains(&0))
            .collect();
        let split = per_dispatch_passes(gpu);
        let count = if split {
            2 * live.len()
        } else {
            live.len() + 1
        };
        if count > wgpu::QUERY_SET_MAX_QUERIES as usize {
            return Err(GpuError::Unsupported(format!(
                "{} dispatches need {count} timestamps (at most {})",
                live.len(),
                wgpu::QUERY_SET_MAX_QUERIES
            )));
        }
        let device = gpu.device();
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count: count as u32,
        });
        let size = 8 * count as u64;
        let resolved = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile.resolved"),
            size,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut enc = device.create_command_encoder(&Default::default());
        before(&mut enc);
        if split {
            for (i, d) in live.iter().enumerate() {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("profile"),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &set,
                        beginning_of_pass_write_index: Some(2 * i as u32),
                        end_of_pass_write_index: Some(2 * i as u32 + 1),
                    }),
                });
                pass.set_pipeline(&d.kernel.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
            }
        } else {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("profile"),
                timestamp_writes: None,
            });
            for (i, d) in live.iter().enumerate() {
                pass.write_timestamp(&set, i as u32);
                pass.set_pipeline(&d.kernel.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
            }
            pass.write_timestamp(&set, live.len() as u32);
        }
        enc.resolve_query_set(&set, 0..count as u32, &resolved, 0);
        gpu.queue().submit([enc.finish()]);
        let bytes = crate::tensor::read_buffer(gpu, &resolved, 0, size).await?;
        let ticks: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let period = gpu.queue().get_timestamp_period() as f64;
        Ok(live
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (a, b) = if split {
                    (ticks[2 * i], ticks[2 * i + 1])
                } else {
                    (ticks[i], ticks[i + 1])
                };
                let kernel = format!("{}::{}", d.kernel.key.family, d.kernel.key.entry);
                KernelTime {
                    name: if d.tag.is_empty() {
                        kernel.clone()
                    } else {
                        d.tag.to_string()
                    },
                    kernel,
                    workgroups: d.workgroups,
                    ns: b.saturating_sub(a) as f64 * period,
                    weight_bytes: d.weight_bytes,
                }
            })
            .collect())
    }
}

/// Per-name totals of one or more profiles of the same program, in first-seen order.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KernelRow {
    pub name: String,
    /// Dispatches of this name per run.
    pub dispatches: usize,
    /// GPU µs per run.
    pub us: f64,
    pub weight_bytes: u64,
    /// `weight_bytes / time`, GB/s (0 where no weights are noted).
    pub gb_s: f64,
}

/// Sums `runs` (each one profile of the same program) by name, averaging over the runs.
pub fn summarize(runs: &[Vec<KernelTime>]) -> Vec<KernelRow> {
    let mut rows: Vec<KernelRow> = Vec::new();
    let n = runs.len().max(1) as f64;
    for (r, run) in runs.iter().enumerate() {
        for t in run {
            let i = match rows.iter().position(|x| x.name == t.name) {
                Some(i) => i,
                None => {
                    rows.push(KernelRow {
                        name: t.name.clone(),
                        dispatches: 0,
                        us: 0.0,
                        weight_bytes: 0,
                        gb_s: 0.0,
                    });
                    rows.len() - 1
                }
            };
            if r == 0 {
                rows[i].dispatches += 1;
                rows[i].weight_bytes += t.weight_bytes;
            }
            rows[i].us += t.ns / 1e3 / n;
        }
    }
    for row in &mut rows {
        if row.us > 0.0 {
            row.gb_s = row.weight_bytes as f64 / (row.us * 1e3);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::gpu;

    #[test]
    fn summarize_averages_runs_and_keeps_counts() {
        let t = |name: &str, ns: f64, bytes: u64| KernelTime {
            name: name.into(),
            kernel: "k::e".into(),
            workgroups: [1, 1, 1],
            ns,
            weight_bytes: bytes,
        };
        let runs = vec![
            vec![t("a", 1000.0, 100), t("b", 500.0, 0), t("a", 3000.0, 300)],
            vec![t("a", 2000.0, 100), t("b", 1500.0, 0), t("a", 2000.0, 300)],
        ];
        let rows = summarize(&runs);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].name.as_str(), rows[0].dispatches), ("a", 2));
        assert!((rows[0].us - 4.0).abs() < 1e-9, "{rows:?}");
        assert_eq!(rows[0].weight_bytes, 400);
        assert!((rows[0].gb_s - 0.1).abs() < 1e-9);
        assert!((rows[1].us - 1.0).abs() < 1e-9 && rows[1].gb_s == 0.0);
    }

    /// A real profile on whatever adapter the tests run on: one entry per dispatch, in order, with
    /// its tag, and a longer kernel measuring longer.
    #[test]
    fn profile_times_each_dispatch() {
        let gpu = gpu();
        if !gpu.features().timestamps {
            eprintln!("no timestamp queries on {}; skipped", gpu.describe());
            return;
        }
        let (small, big) = (1 << 10, 1 << 22);
        let t =
            |n: usize| crate::Tensor::<f32>::from_slice(&gpu, "x", &[n], &vec![1.0; n]).unwrap();
        let (a, b, c, d) = (t(small), t(small), t(big), t(big));
        let add = |x, y| crate::testing::block(crate::elementwise::add(&gpu, x, y)).unwrap();
        let mut p = Program::new();
        p.tagged("small", [add(&a, &b)]);
        p.tagged("big", [add(&c, &d)]);
        let times = crate::testing::block(p.profile(&gpu, |_| {})).unwrap();
        let names: Vec<_> = times.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["small", "big"]);
        assert!(times.iter().all(|t| t.ns >= 0.0));
        assert!(times[1].ns > times[0].ns, "{times:?}");
    }
}
