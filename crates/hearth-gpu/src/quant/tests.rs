use super::*;

#[test]
fn q4_roundtrip_error_is_within_half_a_step() {
    let w: Vec<f32> = (0..64 * 3)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
        .collect();
    let m = HostMatrix::quantize_q4(3, 64, &w).unwrap();
    m.validate().unwrap();
    let d = m.dequantize();
    for (g, (a, b)) in w.chunks(32).zip(d.chunks(32)).enumerate() {
        let (s, _) = unpack_f16x2(m.scales[g]);
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= s * 0.5 + 1e-3,
                "group {g}: {x} vs {y} (step {s})"
            );
        }
    }
}

#[test]
fn q4s_follows_the_q4_0_reference_and_layout() {
    // Group 0: the largest magnitude is negative (-1 → d = 0.125, code 0); group 1: positive
    // (2 → d = -0.25, code 0), so the other side ends at 7·|d| and 0.9 clamps to code 15.
    let mut w = vec![0.0f32; 96];
    w[..4].copy_from_slice(&[-1.0, 0.5, 0.9, 0.0]);
    w[32..36].copy_from_slice(&[2.0, -1.75, -1.9, 0.3]);
    // Group 2 (the odd one out: 3 groups → 2 scale words) is all zeros: d = 0, code 8.
    let m = HostMatrix::quantize_q4s(1, 96, &w).unwrap();
    m.validate().unwrap();
    assert_eq!(m.scales.len(), 2);
    assert_eq!(q4s_scale(&m.scales, 0), 0.125);
    assert_eq!(q4s_scale(&m.scales, 1), -0.25);
    // Group 2's scale is 0/-8 = -0 (as the reference's); the spare high half stays 0.
    assert_eq!(m.scales[1], 0x8000);
    let code = |i: usize| (m.qs[i / 8] >> (4 * (i % 8))) & 0xF;
    assert_eq!([code(0), code(1), code(2), code(3)], [0, 12, 15, 8]);
    assert_eq!([code(32), code(33), code(34), code(35)], [0, 15, 15, 7]);
    assert!((64..96).all(|i| code(i) == 8));
    let d = m.dequantize();
    assert_eq!(&d[..4], &[-1.0, 0.5, 0.875, 0.0]);
    assert_eq!(&d[32..36], &[2.0, -1.75, -1.75, 0.25]);
    assert!(d[64..].iter().all(|&x| x == 0.0));
}

#[test]
fn q4s_roundtrip_error_is_within_half_a_step_and_converts_to_q4() {
    let w: Vec<f32> = (0..96 * 3)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
        .collect();
    let m = HostMatrix::quantize_q4s(3, 96, &w).unwrap();
    m.validate().unwrap();
    assert_eq!(m.bytes(), 3 * 4 * (12 + 2));
    let d = m.dequantize();
    for (g, (a, b)) in w.chunks(32).zip(d.chunks(32)).enumerate() {
        let s = q4s_scale(&m.scales[(g / 3) * 2..], g % 3).abs();
        for (x, y) in a.iter().zip(b) {
            // Codes reach -8|d| on the side of the largest magnitude but only 7|d| on the other,
            // where values beyond it clamp.
            let bound = (0.5 * s).max(x.abs() - 7.0 * s);
            assert!(
                (x - y).abs() <= bound + 1e-3,
                "group {g}: {x} vs {y} (step {s})"
            );
        }
    }
    let q4 = m.q4s_as_q4().unwrap();
    assert_eq!(q4.format, WeightFormat::Q4);
    assert_eq!(q4.dequantize(), d);
    // Stacked with a Q4 matrix, Q4S becomes Q4 value for value.
    let other = HostMatrix::quantize_q4(1, 96, &w[..96]).unwrap();
    let c = HostMatrix::concat_rows(&[&m, &other]).unwrap();
    assert_eq!(c.format, WeightFormat::Q4);
    assert_eq!(c.dequantize_row(1), m.dequantize_row(1));
    assert_eq!(c.dequantize_row(3), other.dequantize_row(0));
    let same = HostMatrix::concat_rows(&[&m, &m]).unwrap();
    assert_eq!(same.format, WeightFormat::Q4S);
    assert_eq!(same.dequantize_row(4), m.dequantize_row(1));
    // Wrong buffer sizes are caught.
    let mut bad = m.clone();
    bad.scales.pop();
    assert!(bad.validate().is_err());
}

#[test]
fn q8_roundtrip_and_concat() {
    let w: Vec<f32> = (0..32 * 4).map(|i| (i as f32 - 60.0) / 9.0).collect();
    let m = HostMatrix::quantize_q8(4, 32, &w).unwrap();
    let d = m.dequantize();
    for (x, y) in w.iter().zip(&d) {
        assert!((x - y).abs() < 0.03, "{x} vs {y}");
    }
    let c = HostMatrix::concat_rows(&[&m, &m]).unwrap();
    assert_eq!(c.rows, 8);
    assert_eq!(c.dequantize_row(5), m.dequantize_row(1));
    for f in WeightFormat::ALL {
        assert_eq!(WeightFormat::from_sym(f.sym()), Some(f));
        if f != WeightFormat::F32 {
            assert!(HostMatrix::quantize(f, 1, 33, &[0.0; 33]).is_err());
        }
    }
}
