//! # wgpu-rnn
//!
//! Recurrent cells (tanh RNN, LSTM, GRU) forward and backward through time, on the CPU
//! ([`cpu`], generic over `f32`/`f64`, the reference every GPU kernel is checked against)
//! and on any GPU that wgpu reaches.
//!
//! Sequences are time-major `[T, B, F]`; weights are in PyTorch's layout ([`Params`]).
//! [`notebook`] offers the course notebook's functions in its own layout.
//!
//! # Errors
//! Every fallible function returns [`Result`]; nothing a caller passes makes the crate
//! panic, abort or return a silently wrong answer:
//! - Arrays of any memory layout are accepted (transposed, stepped, reversed, broadcast
//!   views) and give the result of a standard-layout copy.
//! - Wrong shapes and values are [`Error::Shape`] / [`Error::Invalid`] naming the
//!   argument as the caller wrote it (`x`, `h0`, `trace`; in [`notebook`], `xt`,
//!   `a_prev`, `parameters["Waa"]`). Zero-sized axes are either an error naming the
//!   argument or an empty result where one is meaningful.
//! - Sizes are computed with checked arithmetic, in debug and release alike, and compared
//!   with the limits before anything is allocated: [`Error::TooLarge`] when a product
//!   overflows or passes the host's address space or a device limit; host memory is
//!   allocated fallibly (`try_reserve`), [`Error::OutOfMemory`] when the system refuses.
//! - On the GPU, each call captures the device errors it raises in its own error scopes
//!   ([`Error::Device`]); after a device loss every call returns [`Error::DeviceLost`]
//!   (see [`gpu::Context`] for the one window wgpu leaves: work still running when the
//!   device goes).
//!   Traces remember the layer and weight version that made them; a foreign or stale one
//!   is refused. See [`gpu::Context`] and [`gpu::Layer`].
//!
//! # Threads
//! The CPU functions are pure. The GPU types are `Send + Sync` and may be shared across
//! threads: a [`gpu::Layer`]'s weights are versioned behind a read-write lock, so each
//! forward or backward sees one whole version, and `set_params` refuses no caller but
//! makes older traces stale; each thread times its own passes
//! ([`gpu::Context::set_profiling`]); at most 16 submissions run ahead of the host and
//! uploads are submitted as they are made, so transient device memory stays bounded
//! whatever the call pattern; on the GL backend, calls on one context are serialised by
//! the crate's own lock (wgpu's GL backend panics, and in a destructor aborts, when its
//! context lock is contended for longer than its timeout).
#![warn(missing_docs)]

mod cell;
pub mod cpu;
mod error;
pub mod gpu;
mod host;
pub mod lm;
pub mod net;
pub mod notebook;
pub mod numpy;
mod params;
mod real;
pub mod shaders;

pub use error::{Error, Result};
pub use params::{Cell, Head, Params, SplitMix64};
pub use real::Real;

/// The README's examples, compiled and run as doc-tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
