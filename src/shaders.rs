//! The WGSL sources, one file per kernel family, compiled into the crate.

/// Tiled GEMM `C (+)= op(A)·op(B) (+ bias)`.
pub const GEMM: &str = include_str!("../shaders/gemm.wgsl");
/// Fused tanh RNN forward step.
pub const RNN_STEP: &str = include_str!("../shaders/rnn_step.wgsl");
/// Fused LSTM forward step.
pub const LSTM_STEP: &str = include_str!("../shaders/lstm_step.wgsl");
/// Fused tanh RNN backward step.
pub const RNN_STEP_BACK: &str = include_str!("../shaders/rnn_step_back.wgsl");
/// Fused LSTM backward step.
pub const LSTM_STEP_BACK: &str = include_str!("../shaders/lstm_step_back.wgsl");
/// Softmax of the output head.
pub const HEAD: &str = include_str!("../shaders/head.wgsl");
/// Column sums (bias gradients).
pub const REDUCE: &str = include_str!("../shaders/reduce.wgsl");

/// Every shader with its file name, for validation.
pub const ALL: [(&str, &str); 7] = [
    ("gemm.wgsl", GEMM),
    ("rnn_step.wgsl", RNN_STEP),
    ("lstm_step.wgsl", LSTM_STEP),
    ("rnn_step_back.wgsl", RNN_STEP_BACK),
    ("lstm_step_back.wgsl", LSTM_STEP_BACK),
    ("head.wgsl", HEAD),
    ("reduce.wgsl", REDUCE),
];
