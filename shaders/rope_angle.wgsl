// Angle reduction shared by rope.wgsl and attention.wgsl (#include rope_angle): 2π split so that
// k·C1 is exact for k < 2^16 (Cody–Waite), because GPU sin/cos are only accurate near [-π, π] and
// angles reach thousands of radians at long context.
const INV_TWO_PI: f32 = 0.15915494309189535;
const C1: f32 = 6.28125;
const C2: f32 = 0.0019353071693331003;
const C3: f32 = 1.0253376e-11;

fn reduce_angle(a: f32) -> f32 {
    let k = round(a * INV_TWO_PI);
    return ((a - k * C1) - k * C2) - k * C3;
}
