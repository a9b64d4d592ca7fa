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
    /// No GPU adapter could be found.
    #[error("no GPU adapter found ({0}); install a GPU driver, or a software one with `apt-get install mesa-vulkan-drivers` (lavapipe), or set WGPU_BACKEND=gl to use llvmpipe")]
    NoAdapter(String),
    /// A buffer would exceed a limit of the device.
    #[error("argument `{arg}`: needs a buffer of {bytes} bytes, over the device's {limit_name} of {limit} bytes")]
    TooLarge {
        /// The argument whose buffer is too large.
        arg: &'static str,
        /// Bytes the buffer needs.
        bytes: u64,
        /// Which device limit is exceeded.
        limit_name: &'static str,
        /// The limit's value.
        limit: u64,
    },
    /// The device failed: lost, out of memory, a validation error, a failed readback.
    #[error("GPU device error: {0}")]
    Device(String),
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
