//! The WGSL sources, one file per kernel family, compiled into the crate.

/// Tiled GEMM `C (+)= op(A)·op(B) (+ bias)`.
pub const GEMM: &str = include_str!("../shaders/gemm.wgsl");
/// A step kernel's source: the shared prelude (activations, dims, schedule, indexing)
/// then the kernel's own file.
macro_rules! step_kernel {
    ($file:literal) => {
        concat!(
            include_str!("../shaders/common/activations.wgsl"),
            include_str!("../shaders/common/step.wgsl"),
            include_str!(concat!("../shaders/", $file))
        )
    };
}

/// Fused tanh RNN forward step.
pub const RNN_STEP: &str = step_kernel!("rnn_step.wgsl");
/// Fused LSTM forward step.
pub const LSTM_STEP: &str = step_kernel!("lstm_step.wgsl");
/// Fused GRU forward step (reset after the product).
pub const GRU_STEP: &str = step_kernel!("gru_step.wgsl");
/// The lecture GRU's forward step (reset before the product), first phase: the gates
/// that see `h_{t-1}` and the gated state `r ⊙ h_{t-1}`.
pub const GRU_BEFORE_STEP_GATE: &str = step_kernel!("gru_before_step_gate.wgsl");
/// The lecture GRU's forward step, second phase: the candidate and the update.
pub const GRU_BEFORE_STEP: &str = step_kernel!("gru_before_step.wgsl");
/// Fused tanh RNN backward step.
pub const RNN_STEP_BACK: &str = step_kernel!("rnn_step_back.wgsl");
/// Fused LSTM backward step.
pub const LSTM_STEP_BACK: &str = step_kernel!("lstm_step_back.wgsl");
/// Fused GRU backward step (reset after the product).
pub const GRU_STEP_BACK: &str = step_kernel!("gru_step_back.wgsl");
/// The lecture GRU's backward step, first phase: the carry, the update and candidate
/// gradients.
pub const GRU_BEFORE_STEP_BACK: &str = step_kernel!("gru_before_step_back.wgsl");
/// The lecture GRU's backward step, second phase: the reset gate's gradient through
/// the gated state.
pub const GRU_BEFORE_STEP_BACK_GATE: &str = step_kernel!("gru_before_step_back_gate.wgsl");
/// Softmax of the output head.
pub const HEAD: &str = include_str!("../shaders/head.wgsl");
/// Strided block copy or add (states between a network's tensors and its layers' rows).
pub const BLOCK: &str = include_str!("../shaders/block.wgsl");
/// Batch-row gather with a length mask (sorting variable-length batches and back).
pub const GATHER: &str = include_str!("../shaders/gather.wgsl");
/// Dropout between a network's layers, in place, from a counter-based hash.
pub const DROPOUT: &str = include_str!("../shaders/dropout.wgsl");
/// Softmax cross-entropy in place: the rows' losses and the logits' gradient.
pub const XENT: &str = include_str!("../shaders/xent.wgsl");
/// The embedding's deterministic backward (per token, its positions in order).
pub const EMBED_BACK: &str = include_str!("../shaders/embed_back.wgsl");
/// Gradient clipping in place: the global norm (two deterministic passes) and the
/// scaling, or clipping by value.
pub const CLIP: &str = include_str!("../shaders/clip.wgsl");
/// One optimizer step over a parameter tensor (SGD, momentum, Adam, AdamW).
pub const OPTIM: &str = include_str!("../shaders/optim.wgsl");
/// Moves between a network's flat parameters and its device layouts (index arithmetic).
pub const RELAYOUT: &str = include_str!("../shaders/relayout.wgsl");
/// Column sums (bias gradients).
pub const REDUCE: &str = include_str!("../shaders/reduce.wgsl");

/// Every shader with its file name, for validation.
pub const ALL: [(&str, &str); 21] = [
    ("relayout.wgsl", RELAYOUT),
    ("optim.wgsl", OPTIM),
    ("clip.wgsl", CLIP),
    ("embed_back.wgsl", EMBED_BACK),
    ("xent.wgsl", XENT),
    ("dropout.wgsl", DROPOUT),
    ("gather.wgsl", GATHER),
    ("block.wgsl", BLOCK),
    ("gemm.wgsl", GEMM),
    ("rnn_step.wgsl", RNN_STEP),
    ("lstm_step.wgsl", LSTM_STEP),
    ("gru_step.wgsl", GRU_STEP),
    ("gru_before_step_gate.wgsl", GRU_BEFORE_STEP_GATE),
    ("gru_before_step.wgsl", GRU_BEFORE_STEP),
    ("rnn_step_back.wgsl", RNN_STEP_BACK),
    ("lstm_step_back.wgsl", LSTM_STEP_BACK),
    ("gru_step_back.wgsl", GRU_STEP_BACK),
    ("gru_before_step_back.wgsl", GRU_BEFORE_STEP_BACK),
    ("gru_before_step_back_gate.wgsl", GRU_BEFORE_STEP_BACK_GATE),
    ("head.wgsl", HEAD),
    ("reduce.wgsl", REDUCE),
];

/// Snippets a kernel pulls into its body with a line `#include NAME` (expanded by
/// [`expand`] before the row markers, so snippets may hold them too).
pub const SNIPPETS: [(&str, &str); 6] = [
    (
        "invocation",
        include_str!("../shaders/common/invocation.wgsl"),
    ),
    ("product", include_str!("../shaders/common/product.wgsl")),
    (
        "product_hs",
        include_str!("../shaders/common/product_hs.wgsl"),
    ),
    (
        "gates_vec4",
        include_str!("../shaders/common/gates_vec4.wgsl"),
    ),
    (
        "gru_back_row",
        include_str!("../shaders/common/gru_back_row.wgsl"),
    ),
    ("carry", include_str!("../shaders/common/carry.wgsl")),
];

/// The most rows per invocation [`expand`] unrolls.
pub const MAX_EXPAND_ROWS: u32 = 64;

/// The batch rows per invocation a step kernel can be built for.
pub const STEP_ROWS: [u32; 4] = [1, 2, 4, 8];

/// Expands a step-kernel template for `rows` batch rows per invocation: each line
/// `#include NAME` becomes the snippet `NAME` of [`SNIPPETS`], then `#BT` becomes
/// `rows`, every line holding `#ROW` is repeated once per row with `#ROW` replaced by the
/// row's index, and `#ROWS(e)` becomes `e` for each row, comma-separated. Sources
/// without markers come back unchanged. More than [`MAX_EXPAND_ROWS`] rows is an
/// [`Error::Invalid`](crate::Error::Invalid) naming `rows`.
pub fn expand(src: &str, rows: u32) -> crate::Result<String> {
    if rows > MAX_EXPAND_ROWS {
        return Err(crate::Error::Invalid {
            arg: "rows",
            msg: format!("{rows} rows per invocation; at most {MAX_EXPAND_ROWS}"),
        });
    }
    let mut included = String::with_capacity(src.len() * 2);
    for line in src.lines() {
        match line.trim().strip_prefix("#include ") {
            Some(name) => {
                let snippet = SNIPPETS
                    .iter()
                    .find(|(n, _)| *n == name.trim())
                    .ok_or_else(|| crate::Error::Invalid {
                        arg: "src",
                        msg: format!("#include of an unknown snippet {name:?}"),
                    })?;
                included.push_str(snippet.1);
            }
            None => {
                included.push_str(line);
                included.push('\n');
            }
        }
    }
    let mut out = String::with_capacity(included.len() * 2);
    for line in included.lines() {
        let mut line = line.replace("#BT", &rows.to_string());
        while let Some(start) = line.find("#ROWS(") {
            let open = start + "#ROWS(".len();
            let close = match line[open..].find(')') {
                Some(c) => open + c,
                None => break,
            };
            let inner = &line[open..close];
            let list: Vec<String> = (0..rows)
                .map(|r| inner.replace("#ROW", &r.to_string()))
                .collect();
            line = format!(
                "{}{}{}",
                &line[..start],
                list.join(", "),
                &line[close + 1..]
            );
        }
        if line.contains("#ROW") {
            for r in 0..rows {
                out.push_str(&line.replace("#ROW", &r.to_string()));
                out.push('\n');
            }
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    Ok(out)
}
