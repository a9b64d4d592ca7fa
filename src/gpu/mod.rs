//! The GPU path: WGSL compute kernels dispatched through wgpu.
//!
//! A [`Context`] holds the device and compiles each kernel once. A [`Layer`] owns its
//! weights on the device; [`Layer::forward`] records the input projection (one tiled
//! GEMM over all `T·B` rows) and one fused step dispatch per time step into one command
//! encoder and one compute pass; [`Layer::backward`] walks back with one fused dispatch
//! per step, then three GEMMs and one column sum. Results stay on the device as
//! [`Tensor`]s until downloaded.

mod clip;
mod context;
mod embedding;
mod flat;
mod head;
mod kernels;
mod layer;
mod network;
mod optim;
mod tensor;
mod variant;

pub use clip::{clip_grad_norm, clip_grad_value};
pub(crate) use context::Kernel;
pub use context::{Context, ContextOptions, Stats};
pub use embedding::Embedding;
pub(crate) use flat::{flatten as flatten_net, unflatten as unflatten_net};
pub use head::{GpuHead, GpuHeadLoss};
pub use kernels::matmul;
#[doc(hidden)]
pub use kernels::{col_sum_raw, gemm_raw, GemmSpec};
pub use layer::{forward_host, Forward, Grads, InputGrads, Layer, Mode, ParamGrads, Trace};
pub use network::{NetForward, NetGrads, NetTrace, Network};
pub use optim::{zero_grad, Optim};
pub use tensor::Tensor;
pub use variant::{GemmVariant, StepVariant};
