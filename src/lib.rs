//! # wgpu-rnn
//!
//! Recurrent cells (tanh RNN and LSTM) forward and backward through time, on the CPU
//! ([`cpu`], generic over `f32`/`f64`, the reference every GPU kernel is checked against)
//! and on any GPU that wgpu reaches.
//!
//! Sequences are time-major `[T, B, F]`; weights are in PyTorch's layout ([`Params`]).
//! [`notebook`] offers the course notebook's functions in its own layout.
#![warn(missing_docs)]

pub mod cpu;
mod error;
pub mod gpu;
mod host;
pub mod notebook;
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
