//! Errors returned by every fallible entry point of the crate.

/// Everything that can go wrong in `wgpu-rnn`, as a value.
///
/// User input never panics: a wrong shape comes back as [`Error::Shape`] naming the
/// argument, the shape that was expected and the shape that came.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An argument has the wrong shape, or sizes that disagree with each other.
    #[error("argument `{arg}`: expected shape {expected}, got {got}")]
    Shape {
        /// The argument's name, as in the function's signature.
        arg: &'static str,
        /// The shape that was expected, in words and numbers.
        expected: String,
        /// The shape that was passed.
        got: String,
    },
    /// An argument has a valid shape but an invalid value (an empty size, say).
    #[error("argument `{arg}`: {msg}")]
    Invalid {
        /// The argument's name.
        arg: &'static str,
        /// What is wrong with it.
        msg: String,
    },
    /// A weights file or a network's weights disagree with the network: a key missing,
    /// unexpected or of the wrong shape or type, named by its PyTorch `state_dict` key.
    #[error("weights key `{key}`: {msg}")]
    Weights {
        /// The key, as in the file (prefix included) or as PyTorch names the layer.
        key: String,
        /// What is wrong, and what was expected.
        msg: String,
    },
    /// No GPU adapter could be found.
    #[error("no GPU adapter found ({0}); install a GPU driver, or a software one with `apt-get install mesa-vulkan-drivers` (lavapipe), or set WGPU_BACKEND=gl to use llvmpipe")]
    NoAdapter(String),
    /// A size passes a limit: the product of the dimensions overflows, or the bytes pass
    /// the host's address space or a limit of the device (`max_buffer_size`,
    /// `max_storage_buffer_binding_size`). Checked before anything is allocated.
    #[error("argument `{arg}`: needs {} bytes, over {limit_name} of {limit} bytes", show_bytes(*.bytes))]
    TooLarge {
        /// The argument whose size is too large.
        arg: &'static str,
        /// Bytes needed (`u128::MAX` when even that overflows).
        bytes: u128,
        /// Which limit is exceeded.
        limit_name: &'static str,
        /// The limit's value in bytes.
        limit: u128,
    },
    /// The host refused an allocation (`try_reserve` failed): the size was valid but the
    /// memory is not there.
    #[error("argument `{arg}`: allocating {bytes} bytes on the host failed")]
    OutOfMemory {
        /// The argument whose size asked for the memory.
        arg: &'static str,
        /// Bytes asked for.
        bytes: u128,
    },
    /// The GPU device is lost (destroyed, reset, or its driver failed); every later call
    /// on its context returns this. Make a new [`crate::gpu::Context`] to go on.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// The device reported an error during the call (validation, out of memory, internal),
    /// or a readback failed. Each call captures its own errors only.
    #[error("GPU device error: {0}")]
    Device(String),
}

impl Error {
    /// The same error, naming the argument `to` where it named `from`, for each pair of
    /// `names` (wrappers report the names their callers passed).
    pub(crate) fn renamed(self, names: &[(&str, &'static str)]) -> Error {
        let new = |arg: &'static str| {
            names
                .iter()
                .find(|(from, _)| *from == arg)
                .map_or(arg, |(_, to)| to)
        };
        match self {
            Error::Shape { arg, expected, got } => Error::Shape {
                arg: new(arg),
                expected,
                got,
            },
            Error::Invalid { arg, msg } => Error::Invalid { arg: new(arg), msg },
            Error::TooLarge {
                arg,
                bytes,
                limit_name,
                limit,
            } => Error::TooLarge {
                arg: new(arg),
                bytes,
                limit_name,
                limit,
            },
            Error::OutOfMemory { arg, bytes } => Error::OutOfMemory {
                arg: new(arg),
                bytes,
            },
            e => e,
        }
    }
}

/// `bytes` for a message; the saturated value reads as "more than 2^128 − 1".
fn show_bytes(bytes: u128) -> String {
    if bytes == u128::MAX {
        "more than 2^128 - 1".into()
    } else {
        bytes.to_string()
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Formats a shape as `[a, b, c]`.
pub(crate) fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Checks that `got` equals `expected`, else an [`Error::Shape`] naming `arg`; `what`
/// names the axes (`"[T, B, I]"`).
pub(crate) fn check_shape(
    arg: &'static str,
    what: &str,
    expected: &[usize],
    got: &[usize],
) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Shape {
            arg,
            expected: format!("{what} = {}", fmt_shape(expected)),
            got: fmt_shape(got),
        })
    }
}
