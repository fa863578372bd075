//! Native persistence: one snapshot file per index directory, replaced atomically, and read
//! back in one streaming pass (see the module docs of [`super`] for why not a whole-file read).

use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use super::bytes::Input;
use super::{read, Header, HEADER_LEN, MAGIC, SNAPSHOT_FILE};
use crate::index::KnowledgeIndex;
use crate::{KnowledgeError, Result};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KnowledgeError + '_ {
    move |source| KnowledgeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Read-ahead buffer of the loader; bulk arrays bypass it in pieces of the same size.
const BUFFER: usize = 1 << 20;

/// Hashes (CRC-32) everything read through it.
struct Hashed<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

impl KnowledgeIndex {
    /// Writes `dir/index.hsnap`: into a temporary file, fsynced, then renamed over the old
    /// snapshot (and the directory fsynced), so a crash leaves the old or the new one whole.
    pub fn save(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let bytes = self.to_bytes()?;
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let path = dir.join(SNAPSHOT_FILE);
        let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        // The rename itself is durable only once the directory entry is.
        #[cfg(unix)]
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(())
    }

    /// Reads `dir/index.hsnap`: header checks, then one pass that checksums the payload while
    /// decoding it. A payload whose checksum does not match is refused as such, even when the
    /// damage also broke its structure.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(SNAPSHOT_FILE);
        let mut file = fs::File::open(&path).map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        if len < HEADER_LEN as u64 {
            let mut start = Vec::new();
            file.read_to_end(&mut start).map_err(io(&path))?;
            if start.len() >= 8 && start[..8] != MAGIC {
                return Err(KnowledgeError::SnapshotMagic);
            }
            return Err(KnowledgeError::SnapshotTruncated(format!(
                "{} bytes, header is {HEADER_LEN}",
                start.len()
            )));
        }
        let mut head = [0u8; HEADER_LEN];
        file.read_exact(&mut head).map_err(io(&path))?;
        let header = Header::parse(&head)?;
        header.check_len(len - HEADER_LEN as u64)?;

        let hashed = Hashed {
            inner: file.take(header.payload_len),
            crc: crc32fast::Hasher::new(),
        };
        let reader = BufReader::with_capacity(BUFFER, hashed);
        let mut input = Input::new(reader, header.payload_len, path.display().to_string());
        let decoded = read::decode(&mut input);
        if decoded.is_err() {
            // Hash the rest, so that damage is reported as a checksum mismatch.
            std::io::copy(&mut input.r, &mut std::io::sink()).map_err(io(&path))?;
        }
        let hashed = input.r.into_inner();
        let found = hashed.crc.finalize();
        let consumed = header.payload_len - hashed.inner.limit();
        if found != header.crc && consumed == header.payload_len {
            return Err(KnowledgeError::SnapshotChecksum {
                expected: header.crc,
                found,
            });
        }
        let index = decoded?;
        if consumed != header.payload_len {
            return Err(KnowledgeError::SnapshotTruncated(format!(
                "{} ended after {consumed} of {} payload bytes",
                path.display(),
                header.payload_len
            )));
        }
        Ok(index)
    }
}
