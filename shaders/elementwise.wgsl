// Elementwise kernels. Defines: N (element count), WG (workgroup size).

// a: [N] f32, read-write — accumulates in place
@group(0) @binding(0) var<storage, read_write> a: array<f32>;
// b: [N] f32
@group(0) @binding(1) var<storage, read> b: array<f32>;

// a += b (residual add when it is not fused into a projection's epilogue)
@compute @workgroup_size(WG)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i < N) {
        a[i] = a[i] + b[i];
    }
}
