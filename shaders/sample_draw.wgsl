// The draw of sample.wgsl (#include sample_draw): ranking the threshold's ties, then a draw over
// the surviving candidates, sorted (top-p) or by index. Uses sample.wgsl's bindings, workgroup arrays
// and helpers.

// su[c] = threshold ties in chunks before c (chunks 4t .. 4t + 3 per invocation; NWG <= CH).
fn tie_ranks(t: u32) {
    var e: array<u32, 4>;
    var n = 0u;
    for (var j = 0u; j < 4u; j++) {
        let c = 4u * t + j;
        e[j] = select(0u, scr[O_EQ + min(c, NWG - 1u)], c < NWG);
        n += e[j];
    }
    var run = scan_incl(t, n) - n;
    for (var j = 0u; j < 4u; j++) {
        let c = 4u * t + j;
        if (c < NWG) {
            su[c] = run;
        }
        run += e[j];
    }
    workgroupBarrier();
}

// SORTED: the kept ties join the candidates after the ids above the threshold (the candidate
// counter goes on from there). Only chunks holding kept ties are scanned: with distinct logits, one.
fn collect_ties(t: u32, thr: vec2<u32>) {
    if (t == 0u) {
        atomicStore(&n_chunks, 0u);
    }
    workgroupBarrier();
    for (var c = t; c < NWG; c += WG) {
        if (scr[O_EQ + c] != 0u && su[c] < thr.y) {
            // At most thr.y <= WG chunks qualify; the list order does not matter.
            ski[min(atomicAdd(&n_chunks, 1u), WG - 1u)].x = c;
        }
    }
    workgroupBarrier();
    if (t == 0u) {
        n_list = min(atomicLoad(&n_chunks), WG);
    }
    let n = workgroupUniformLoad(&n_list);
    for (var q = 0u; q < n; q++) {
        let c = ski[q].x;
        let keep = survivors(c, t, thr);
        for (var j = 0u; j < ITEMS; j++) {
            let i = c * CH + t * ITEMS + j;
            if (((keep >> j) & 1u) != 0u && key_of(work[i]) == thr.x) {
                scr[O_CAND + min(atomicAdd(&atom[O_NCAND], 1u), WG - 1u)] = i;
            }
        }
    }
    storageBarrier();
}

// Σ sf[off .. off + n), in order.
fn sum_sf(off: u32, n: u32) -> f32 {
    var z = 0.0;
    for (var u = off; u < off + n; u++) {
        z += sf[u];
    }
    return z;
}

struct Walk { at: u32, rest: f32 }

// The first of sf[off .. off + n) whose running sum exceeds goal, and goal less the sum before it;
// past the end (rounding), the last positive one and BIG; NONE when none is positive.
fn walk(off: u32, n: u32, goal: f32) -> Walk {
    var cum = 0.0;
    var last = NONE;
    for (var u = 0u; u < n; u++) {
        let m = sf[off + u];
        if (m > 0.0) {
            last = u;
            if (cum + m > goal) {
                return Walk(u, goal - cum);
            }
        }
        cum += m;
    }
    return Walk(last, BIG);
}

// SORTED: sort the ≤ KMAX candidates (key desc, id asc), cut at top-p mass, draw in that order.
fn draw_sorted(t: u32, mx: f32, pos: u32) {
    let k = select_k();
    ski[t] = vec2(0u, NONE);
    if (t < k) {
        let id = scr[O_CAND + t];
        ski[t] = vec2(key_of(work[id]), id);
    }
    // Bitonic sort; the comparator is a total order (ids are unique), so the result is unique.
    for (var size = 2u; size <= WG; size = size << 1u) {
        for (var stride = size >> 1u; stride > 0u; stride = stride >> 1u) {
            workgroupBarrier();
            let p = t ^ stride;
            if (p > t) {
                let first = (t & size) == 0u; // this block ends up best-first
                if (better(ski[p], ski[t]) == first) {
                    let x = ski[t];
                    ski[t] = ski[p];
                    ski[p] = x;
                }
            }
        }
    }
    // Top-p over the whole vocabulary: its mass, summed over the chunks in order.
    if (params.top_k == 0u) {
        for (var w = t; w < NWG; w += WG) {
            sf[w] = bitcast<f32>(scr[O_MASS + w]);
        }
        workgroupBarrier();
        if (t == 0u) {
            rest = sum_sf(0u, NWG);
        }
    }
    workgroupBarrier();
    sf[t] = 0.0;
    sf[WG + t] = 0.0;
    if (t < k) {
        let v = work[ski[t].y];
        sf[t] = weight(v - mx); // softmax at temperature 1, for top-p
        sf[WG + t] = weight((v - mx) * params.inv_temp); // the draw's weights
    }
    workgroupBarrier();
    if (t == 0u) {
        let z1 = select(sum_sf(0u, k), rest, params.top_k == 0u);
        let pz = params.top_p * z1;
        var n = k;
        var cum = 0.0;
        for (var u = 0u; u < k; u++) {
            cum += sf[u];
            if (cum >= pz) {
                n = u + 1u;
                break;
            }
        }
        let pick = walk(WG, n, uniform01(pos) * sum_sf(WG, n)).at;
        chosen = ski[select(pick, 0u, pick == NONE)].y;
    }
}

// INDEX: pick the chunk, then the invocation, then the item whose cumulative weight passes the target.
// A chunk's mass: its keys above the threshold (tally), then its kept ties, e_t each.
fn draw_index(t: u32, thr: vec2<u32>, mx: f32, pos: u32) {
    let e_t = weight((value_of(thr.x) - mx) * params.inv_temp);
    for (var w = t; w < NWG; w += WG) {
        var m = bitcast<f32>(scr[O_WMASS + w]);
        let kept = min(scr[O_EQ + w], thr.y - min(su[w], thr.y));
        for (var j = 0u; j < kept; j++) {
            m += e_t;
        }
        sf[w] = m;
    }
    workgroupBarrier();
    if (t == 0u) {
        let c = walk(0u, NWG, uniform01(pos) * sum_sf(0u, NWG));
        chunk = select(c.at, 0u, c.at == NONE);
        rest = c.rest;
    }
    let cw = workgroupUniformLoad(&chunk);
    // Weights of the chunk's items in sf[0 .. CH), per-invocation sums in sf[CH .. CH + WG).
    sf[CH + t] = chunk_weights(cw, t, thr, mx);
    workgroupBarrier();
    if (t == 0u) {
        let lane = walk(CH, WG, rest);
        if (lane.at != NONE) {
            let item = walk(lane.at * ITEMS, ITEMS, lane.rest);
            if (item.at != NONE) {
                chosen = cw * CH + lane.at * ITEMS + item.at;
            }
        }
    }
}
