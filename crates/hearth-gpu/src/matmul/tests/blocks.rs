//! The mat-vec's blocks per workgroup and int8 activations (see [`Tune::bpw`], [`Tune::xq`]).

use super::*;

#[test]
fn several_blocks_per_workgroup() {
    // 3 blocks per workgroup: N = 103 (or 75 gated) leaves the last workgroup a partial block and
    // blocks past the end; x stays in registers across blocks (one unit per invocation, or two
    // rounded to int8) or is read per block (two f32 units; F32 weights: 5 or more). K = 1088
    // gives 4-bit rows 34 units: a second unit per invocation for only two of the 32. With and
    // without subgroups, with f32 and int8 activations.
    for allow_subgroups in [true, false] {
        let gpu = gpu_with(&GpuOptions {
            allow_subgroups,
            ..GpuOptions::default()
        });
        let mut seed = 900;
        for format in FORMATS {
            for epi in [Epilogue::Store, Epilogue::SiluGate, Epilogue::Accumulate] {
                for (m, k) in [(1, 576), (3, 576), (1, 1088)] {
                    let n = if epi == Epilogue::SiluGate { 150 } else { 103 };
                    let c = Case {
                        format,
                        n,
                        k,
                        norm: epi != Epilogue::Accumulate,
                        epi,
                        bias: false,
                        m,
                        x_off: 1,
                    };
                    for xq in [false, true] {
                        let tune = Tune {
                            bpw: 3,
                            xq,
                            ..Tune::for_shape(format, n, k, epi == Epilogue::SiluGate)
                        };
                        check_tuned(&gpu, c, seed, Some(tune));
                    }
                    seed += 10;
                }
            }
        }
    }
}

#[test]
fn lm_head_shaped_int8_matvec() {
    // A Llama-3.2-1B-sized head's rows of 2,048 at Q4S with its norm, over 4,096 blocks: 8 blocks
    // per workgroup and int8 activations (only 4-bit heads take them: not SmolLM2's Q8 one).
    let gpu = gpu();
    let c = Case {
        format: WeightFormat::Q4S,
        n: 32800,
        k: 2048,
        norm: true,
        epi: Epilogue::Store,
        bias: false,
        m: 1,
        x_off: 2,
    };
    let t = Tune::for_shape(c.format, c.n, c.k, false);
    assert!(t.xq && t.bpw == 8, "{t:?}");
    assert!(!Tune::for_shape(WeightFormat::Q8, 49152, 576, false).xq);
    check(&gpu, c, 1234);
}
