//! The WGSL sources, one file per kernel family, compiled into the crate.

/// Tiled GEMM `C (+)= op(A)·op(B) (+ bias)`.
pub const GEMM: &str = concat!(
    include_str!("../shaders/common/gemm.wgsl"),
    include_str!("../shaders/gemm.wgsl")
);
/// The GEMM without workgroup memory or barriers, for CPU adapters.
pub const GEMM_DIRECT: &str = concat!(
    include_str!("../shaders/common/gemm.wgsl"),
    include_str!("../shaders/gemm_direct.wgsl")
);
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

/// The tiled GEMM's K steps: 8 (two 6 KiB tile buffers, within WebGPU's default 16 KiB
/// of workgroup memory) and 16 (24 KiB, half the barriers, where the adapter has it).
pub const GEMM_K_STEPS: [u32; 2] = [8, 16];

/// The tiled GEMM ([`GEMM`]) with a K step of `bk`, one of [`GEMM_K_STEPS`].
pub fn gemm_with_k_step(bk: u32) -> crate::Result<String> {
    if !GEMM_K_STEPS.contains(&bk) {
        return Err(crate::Error::Invalid {
            arg: "gemm_k_step",
            msg: format!("a K step of {bk}; one of {GEMM_K_STEPS:?}"),
        });
    }
    const DECL: &str = "const BK: u32 = 8u;";
    if GEMM.matches(DECL).count() != 1 {
        return Err(crate::Error::Invalid {
            arg: "gemm_k_step",
            msg: format!("gemm.wgsl declares its K step other than as `{DECL}` (a bug)"),
        });
    }
    Ok(GEMM.replace(DECL, &format!("const BK: u32 = {bk}u;")))
}

/// The workgroup memory, in bytes, of the tiled GEMM with a K step of `bk` (two buffers
/// of `bk` × (128 + 64) f32).
pub fn gemm_workgroup_bytes(bk: u32) -> u64 {
    2 * u64::from(bk) * (128 + 64) * 4
}

/// Every shader with its file name, for validation.
pub const ALL: [(&str, &str); 22] = [
    ("gemm_direct.wgsl", GEMM_DIRECT),
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
/// [`expand`] before the row markers, so snippets may hold them too, and may include
/// others).
pub const SNIPPETS: [(&str, &str); 9] = [
    ("each_row", include_str!("../shaders/common/each_row.wgsl")),
    (
        "invocation",
        include_str!("../shaders/common/invocation.wgsl"),
    ),
    (
        "invocation_lets",
        include_str!("../shaders/common/invocation_lets.wgsl"),
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
    (
        "carry_dh0",
        include_str!("../shaders/common/carry_dh0.wgsl"),
    ),
];

/// The snippets that take the place of [`SNIPPETS`]' of the same name in the variant
/// split over K ([`expand_variant`] with `split > 1`): the invocation's place within its
/// workgroup, and the recurrent product and carry summed in slices and reduced in
/// workgroup memory.
pub const SPLIT_SNIPPETS: [(&str, &str); 3] = [
    (
        "invocation",
        include_str!("../shaders/common/split/invocation.wgsl"),
    ),
    (
        "product",
        include_str!("../shaders/common/split/product.wgsl"),
    ),
    ("carry", include_str!("../shaders/common/split/carry.wgsl")),
];

/// The most rows per invocation [`expand`] unrolls.
pub const MAX_EXPAND_ROWS: u32 = 64;

/// The batch rows per invocation a step kernel can be built for.
pub const STEP_ROWS: [u32; 4] = [1, 2, 4, 8];

/// Invocations per step-kernel workgroup (the shaders' `@workgroup_size`).
pub const STEP_WORKGROUP: u32 = 64;

/// The ways a step kernel's recurrent product can be split over K within a workgroup
/// (1: not split, one invocation per unit).
pub const STEP_SPLITS: [u32; 6] = [1, 2, 4, 8, 16, 32];

/// The hidden units one step-kernel invocation can carry.
pub const STEP_COLS: [u32; 3] = [1, 2, 4];

/// Expands a step-kernel template for `rows` batch rows and one unit per invocation, not
/// split over K: [`expand_variant`] with `split = 1`, `cols = 1`.
pub fn expand(src: &str, rows: u32) -> crate::Result<String> {
    expand_variant(src, rows, 1, 1)
}

/// Expands a step-kernel template for `rows` batch rows and `cols` hidden units per
/// invocation (one of [`STEP_COLS`]) and its recurrent product split `split` ways over K
/// (one of [`STEP_SPLITS`]): each line `#include NAME` becomes the snippet `NAME`
/// ([`SPLIT_SNIPPETS`] first when `split > 1`, then [`SNIPPETS`]; snippets may include
/// others), then `#BT` becomes `rows`, `#COLS` `cols`, `#Q` `rows · cols` (the (row, unit)
/// pairs of an invocation), `#SPLIT` `split`, `#UNITS` the lanes per workgroup slice
/// ([`STEP_WORKGROUP`] / `split`) and `#LANES` `#Q` × [`STEP_WORKGROUP`]; every line
/// holding `#ROW`, `#R` or `#J` is repeated once per pair q = r · cols + u with `#ROW`
/// replaced by q, `#R` by r and `#J` by u, and `#ROWS(e)` becomes `e` for each pair,
/// comma-separated. A line `#module DECL` (a workgroup variable a snippet needs) moves to
/// the end of the module as `DECL`, once. Sources without markers come back unchanged.
/// More than [`MAX_EXPAND_ROWS`] pairs is an [`Error::Invalid`](crate::Error::Invalid)
/// naming `rows`, a split outside [`STEP_SPLITS`] one naming `split`, a unit count
/// outside [`STEP_COLS`] one naming `cols`.
pub fn expand_variant(src: &str, rows: u32, split: u32, cols: u32) -> crate::Result<String> {
    if !STEP_COLS.contains(&cols) {
        return Err(crate::Error::Invalid {
            arg: "cols",
            msg: format!("{cols} units per invocation; one of {STEP_COLS:?}"),
        });
    }
    let pairs = rows.saturating_mul(cols);
    if pairs > MAX_EXPAND_ROWS {
        return Err(crate::Error::Invalid {
            arg: "rows",
            msg: format!(
                "{rows} rows × {cols} units per invocation; at most {MAX_EXPAND_ROWS} pairs"
            ),
        });
    }
    if !STEP_SPLITS.contains(&split) {
        return Err(crate::Error::Invalid {
            arg: "split",
            msg: format!("a split over K of {split}; one of {STEP_SPLITS:?}"),
        });
    }
    let snippet = |name: &str| {
        let variant = SPLIT_SNIPPETS.iter().filter(|_| split > 1);
        variant
            .chain(SNIPPETS.iter())
            .find(|(n, _)| *n == name)
            .map(|s| s.1)
            .ok_or_else(|| crate::Error::Invalid {
                arg: "src",
                msg: format!("#include of an unknown snippet {name:?}"),
            })
    };
    let mut included = src.to_string();
    for _depth in 0..8 {
        if !included.contains("#include ") {
            break;
        }
        let mut next = String::with_capacity(included.len() * 2);
        for line in included.lines() {
            match line.trim().strip_prefix("#include ") {
                Some(name) => next.push_str(snippet(name.trim())?),
                None => {
                    next.push_str(line);
                    next.push('\n');
                }
            }
        }
        included = next;
    }
    if included.contains("#include ") {
        return Err(crate::Error::Invalid {
            arg: "src",
            msg: "#include nested more than 8 deep".into(),
        });
    }
    // Pair q's markers: `#ROW` first (`#R` is its prefix).
    let per_pair = |text: &str, q: u32| {
        text.replace("#ROW", &q.to_string())
            .replace("#R", &(q / cols).to_string())
            .replace("#J", &(q % cols).to_string())
    };
    let mut out = String::with_capacity(included.len() * 2);
    let mut module: Vec<String> = Vec::new();
    for line in included.lines() {
        let mut line = line
            .replace("#BT", &rows.to_string())
            .replace("#COLS", &cols.to_string())
            .replace("#Q", &pairs.to_string())
            .replace("#SPLIT", &split.to_string())
            .replace("#UNITS", &(STEP_WORKGROUP / split).to_string())
            .replace("#LANES", &(pairs * STEP_WORKGROUP).to_string());
        while let Some(start) = line.find("#ROWS(") {
            let open = start + "#ROWS(".len();
            let close = match line[open..].find(')') {
                Some(c) => open + c,
                None => break,
            };
            let inner = &line[open..close];
            let list: Vec<String> = (0..pairs).map(|q| per_pair(inner, q)).collect();
            line = format!(
                "{}{}{}",
                &line[..start],
                list.join(", "),
                &line[close + 1..]
            );
        }
        if let Some(decl) = line.trim().strip_prefix("#module ") {
            if !module.iter().any(|d| d == decl) {
                module.push(decl.to_string());
            }
        } else if line.contains("#R") || line.contains("#J") {
            for q in 0..pairs {
                out.push_str(&per_pair(&line, q));
                out.push('\n');
            }
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    for decl in module {
        out.push_str(&decl);
        out.push('\n');
    }
    Ok(out)
}
