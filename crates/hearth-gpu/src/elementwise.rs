//! Elementwise kernels (`shaders/elementwise.wgsl`): residual add.

use crate::{Defines, Dispatch, Gpu, KernelKey, Result, Tensor};

const WG: u32 = 256;

/// Splits `n` items over workgroups of `wg` into a 2-D grid within the per-dimension limit.
pub fn grid(gpu: &Gpu, n: usize, wg: u32) -> [u32; 3] {
    let groups = (n as u64).div_ceil(wg as u64).max(1);
    let max = gpu.limits().max_compute_workgroups_per_dimension as u64;
    if groups <= max {
        [groups as u32, 1, 1]
    } else {
        [max as u32, groups.div_ceil(max) as u32, 1]
    }
}

/// `a += b`.
pub async fn add(gpu: &Gpu, a: &Tensor<f32>, b: &Tensor<f32>) -> Result<Dispatch> {
    if a.len() != b.len() {
        return Err(crate::GpuError::Shape(format!(
            "add: {:?} + {:?}",
            a.shape(),
            b.shape()
        )));
    }
    let k = gpu
        .kernel(KernelKey::new(
            "elementwise",
            "add",
            Defines::new().u32("N", a.len() as u32).u32("WG", WG),
        ))
        .await?;
    gpu.dispatch(&k, &[a.binding(), b.binding()], grid(gpu, a.len(), WG))
}

/// CPU reference of [`add`].
pub fn add_ref(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{testing::*, Program};

    #[test]
    fn add_matches_reference() {
        let gpu = gpu();
        let n = 1000;
        let (x, y) = (random(1, n, 1.0), random(2, n, 1.0));
        let a = Tensor::from_slice(&gpu, "a", &[n], &x).unwrap();
        let b = Tensor::from_slice(&gpu, "b", &[n], &y).unwrap();
        let mut p = Program::new();
        p.push(block(add(&gpu, &a, &b)).unwrap());
        gpu.submit(&p);
        let got = block(a.read(&gpu)).unwrap();
        let mut want = x.clone();
        add_ref(&mut want, &y);
        assert_close("add", &got, &want, 0.0, 0.0);
    }
}
