//! The one error type of `hearth-gpu`.

/// Everything that can go wrong between Hearth and the GPU.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "WebGPU is not available here (navigator.gpu is missing): use Chrome or Edge 124+ \
         and make sure WebGPU is enabled (chrome://flags/#enable-unsafe-webgpu on Linux)"
    )]
    NoWebGpu,
    #[error("no GPU adapter found: {0}")]
    NoAdapter(String),
    #[error("could not create a GPU device: {0}")]
    RequestDevice(String),
    #[error("shader `{family}` failed to compile: {message}")]
    Shader { family: String, message: String },
    #[error("unknown shader family `{0}`")]
    UnknownShader(String),
    #[error("shader preprocessing of `{family}`: {message}")]
    Preprocess { family: String, message: String },
    #[error("{what} needs {bytes} bytes but this GPU allows at most {max} per buffer")]
    TooLarge { what: String, bytes: u64, max: u64 },
    #[error("shape error: {0}")]
    Shape(String),
    #[error("GPU out of memory: {0}")]
    OutOfMemory(String),
    #[error("GPU validation error: {0}")]
    Validation(String),
    #[error("GPU readback failed: {0}")]
    Readback(String),
    #[error("not supported by this GPU: {0}")]
    Unsupported(String),
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
}

pub type Result<T, E = GpuError> = std::result::Result<T, E>;
