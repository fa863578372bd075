//! Structural check of an encoded `instant_distance::Hnsw<Embedding>` before it is decoded.
//!
//! instant-distance indexes its arrays with the neighbour ids it stores, so a forged (checksum-
//! valid) graph with an out-of-range id would panic at query time; its fields are private, so the
//! only place to check them is here, on the bytes. With the codec of [`super::codec`] the
//! `Hnsw` struct (`ef_search, points, zero, layers`) is laid out as:
//!
//! ```text
//! ef_search: u64
//! points:    u64 n, then n × (u64 byte_len = 4·dim, byte_len bytes of LE f32)
//! zero:      u64 n, then n × 64 × u32    (layer-0 neighbours, u32::MAX = none)
//! layers:    u64 L, then L × (u64 len, len × 32 × u32)   (layers 1..=L, bottom up)
//! ```
//!
//! Search starts at point 0 of the top layer and descends; a node of layer l only links to
//! points of layer l, and layer l+1 is a prefix of layer l. So: lengths non-increasing and
//! non-zero, every id of a layer of length len below len (or `u32::MAX`), zero layer ids below n.

/// Zero-layer links per node (`2·M`) and upper-layer links (`M`) in instant-distance 0.6.
const ZERO_LINKS: usize = 64;
const UPPER_LINKS: usize = 32;
/// Larger values can only come from a damaged file and would make every query crawl.
pub const MAX_EF_SEARCH: u64 = 1 << 16;

const NONE: u32 = u32::MAX;

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!(
                "graph needs {n} more bytes, {} remain",
                self.buf.len()
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    /// A count of elements of `elem` bytes each, checked against the remaining bytes.
    fn count(&mut self, elem: usize) -> Result<usize, String> {
        let n = self.u64()?;
        match usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(elem).map(|bytes| (n, bytes)))
        {
            Some((n, bytes)) if bytes <= self.buf.len() => Ok(n),
            _ => Err(format!(
                "graph count {n} exceeds the remaining {} bytes",
                self.buf.len()
            )),
        }
    }

    /// Checks `nodes × links` neighbour ids are all below `limit` (or none).
    fn links(
        &mut self,
        nodes: usize,
        links: usize,
        limit: usize,
        what: &str,
    ) -> Result<(), String> {
        let bytes = self.take(nodes * links * 4)?;
        for c in bytes.chunks_exact(4) {
            let id = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if id != NONE && id as usize >= limit {
                return Err(format!("{what} links to point {id} of {limit}"));
            }
        }
        Ok(())
    }
}

/// Validates the encoded graph for `dim`-dimensional points; returns `(ef_search, points)`.
pub fn validate(bytes: &[u8], dim: usize) -> Result<(usize, usize), String> {
    let mut c = Cursor { buf: bytes };
    let ef_search = c.u64()?;
    if ef_search == 0 || ef_search > MAX_EF_SEARCH {
        return Err(format!("ef_search {ef_search} out of range"));
    }
    let point_bytes = 8 + 4 * dim;
    let n = c.count(point_bytes)?;
    for i in 0..n {
        if c.u64()? != (4 * dim) as u64 {
            return Err(format!("point {i} is not {dim}-dimensional"));
        }
        c.take(4 * dim)?;
    }
    if c.count(ZERO_LINKS * 4)? != n {
        return Err("zero layer and point counts differ".into());
    }
    c.links(n, ZERO_LINKS, n, "zero layer")?;
    let layers = c.count(8)?;
    if n == 0 && layers != 0 {
        return Err("empty graph with upper layers".into());
    }
    let mut below = n;
    for l in 1..=layers {
        let len = c.count(UPPER_LINKS * 4)?;
        if len == 0 || len > below {
            return Err(format!(
                "layer {l} has {len} nodes, the layer below {below}"
            ));
        }
        c.links(len, UPPER_LINKS, len, "upper layer")?;
        below = len;
    }
    if !c.buf.is_empty() {
        return Err(format!("{} trailing graph bytes", c.buf.len()));
    }
    Ok((ef_search as usize, n))
}
