//! Where a model folder's files come from: a native directory, or (on wasm) the `File`s of a folder
//! the user chose. The Hugging Face loader reads only through [`ModelSource`], so one load path
//! serves `hearth convert` and the browser's importer alike.

use crate::error::{ModelError, Result};

/// One open file that can be read at any offset.
pub trait ReadAt {
    /// The file's size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` from `offset`; reading past the end is an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// Another handle on the same file that another thread may read at the same time, where the
    /// platform has positional reads (natively on Unix); `None` elsewhere.
    fn try_clone(&self) -> Option<Box<dyn ReadAt + Send>> {
        None
    }
}

/// A folder of model files, named by plain file names.
pub trait ModelSource {
    /// A description of the folder for error messages.
    fn describe(&self) -> String;
    fn exists(&self, name: &str) -> bool;
    /// Opens `name`; [`ModelError::MissingFile`] when the folder has no such file.
    fn open(&self, name: &str) -> Result<Box<dyn ReadAt + '_>>;

    /// The whole of a (small) file.
    fn read_all(&self, name: &str) -> Result<Vec<u8>> {
        let mut f = self.open(name)?;
        let n = usize::try_from(f.size())
            .map_err(|_| ModelError::Unsupported(format!("{name}: too large to read whole")))?;
        let mut buf = vec![0u8; n];
        f.read_at(0, &mut buf)?;
        Ok(buf)
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::disk_file;
#[cfg(not(target_arch = "wasm32"))]
pub use native::DirSource;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::fs::File;
    use std::path::{Path, PathBuf};

    use super::{ModelSource, ReadAt};
    use crate::error::{ModelError, Result};

    /// A model directory on disk.
    pub struct DirSource {
        dir: PathBuf,
    }

    impl DirSource {
        pub fn new(dir: &Path) -> Self {
            Self {
                dir: dir.to_owned(),
            }
        }
    }

    struct DiskFile {
        path: PathBuf,
        file: File,
        len: u64,
    }

    fn io(path: &Path, e: std::io::Error) -> ModelError {
        ModelError::Io {
            path: path.display().to_string(),
            source: e,
        }
    }

    /// `file`, opened from `path`, as a [`ReadAt`].
    pub(crate) fn disk_file(path: PathBuf, file: File) -> Result<Box<dyn ReadAt>> {
        let len = file.metadata().map_err(|e| io(&path, e))?.len();
        Ok(Box::new(DiskFile { path, file, len }))
    }

    impl ReadAt for DiskFile {
        fn size(&self) -> u64 {
            self.len
        }

        /// Positional on Unix: handles from `try_clone` share one file offset, so no seeking.
        #[cfg(unix)]
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
            use std::os::unix::fs::FileExt;
            self.file
                .read_exact_at(buf, offset)
                .map_err(|e| io(&self.path, e))
        }

        #[cfg(not(unix))]
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
            use std::io::{Read, Seek, SeekFrom};
            self.file
                .seek(SeekFrom::Start(offset))
                .and_then(|_| self.file.read_exact(buf))
                .map_err(|e| io(&self.path, e))
        }

        #[cfg(unix)]
        fn try_clone(&self) -> Option<Box<dyn ReadAt + Send>> {
            Some(Box::new(DiskFile {
                path: self.path.clone(),
                file: self.file.try_clone().ok()?,
                len: self.len,
            }))
        }
    }

    impl ModelSource for DirSource {
        fn describe(&self) -> String {
            self.dir.display().to_string()
        }

        fn exists(&self, name: &str) -> bool {
            self.dir.join(name).is_file()
        }

        fn open(&self, name: &str) -> Result<Box<dyn ReadAt + '_>> {
            let path = self.dir.join(name);
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ModelError::MissingFile(path.display().to_string()))
                }
                Err(e) => return Err(io(&path, e)),
            };
            let len = file.metadata().map_err(|e| io(&path, e))?.len();
            Ok(Box::new(DiskFile { path, file, len }))
        }
    }
}
