//! Cells: the unit of extension. Each cell says once, in its own file, what an engine
//! needs of it — its gate count, whether it has a cell state, how the recurrent product
//! meets the input projection (folded into it, kept apart, or a late gate that meets a
//! gated state), what a training forward keeps, and its elementwise forward and
//! backward for one batch row — and the engines are generic over it.
//!
//! Adding a cell:
//! 1. a file here (or a second type in a cell's file, for a variant such as the GRU's
//!    `reset_after`) implementing [`CellDef`]: its CPU rows, its device slots, and its
//!    step kernels as [`Phase`]s (usually one forward and one backward; more when a
//!    step needs a whole row of something before going on, as the lecture's GRU does)
//!    with their bindings by [`Role`];
//! 2. its step shaders in `shaders/`, each a constant in `crate::shaders` made with
//!    `step_kernel!` (which prepends the shared prelude) and listed in its `ALL`; the
//!    shaders pull the shared parts in with `#include` (the invocation's coordinates,
//!    the recurrent product, the backward carry and the final `dh0` dispatch) and
//!    index their buffers through the step schedule's entry, never `t` itself;
//! 3. a variant of [`crate::Cell`] and an entry of `Cell::ALL` — every test grid,
//!    gradient check and bad-input suite loops over `Cell::ALL`, so the new cell is
//!    tested from then on;
//! 4. one line in [`with_cell!`].
//!
//! The engines (`cpu`, `gpu::Layer`) and the kernel list never name a cell; they ask
//! the cell (`FOLD`, `LATE`, `HAS_C`, the roles its phases bind). The unit test below
//! and `gpu::kernels`' tests check each cell's slots and each kernel's bindings and
//! uniforms against its shader by naga reflection.

#[cfg(test)]
mod tests {
    use super::{with_cell, CellDef};
    use crate::Cell;

    /// Every gate of every cell has a device slot on each side, what forward keeps fits
    /// the device slots, and a late gate is what the engines assume.
    #[test]
    fn every_gate_has_its_slots() {
        for cell in Cell::ALL {
            with_cell!(cell, C => {
                assert_eq!(C::IH.len(), C::SLOTS, "{cell:?} IH");
                assert_eq!(C::HH.len(), C::SLOTS, "{cell:?} HH");
                for g in 0..C::GATES {
                    assert!(C::IH.contains(&Some(g)), "{cell:?}: input gate {g} has no slot");
                    assert!(C::HH.contains(&Some(g)), "{cell:?}: recurrent gate {g} has no slot");
                }
                // The CPU keeps it in rows of max(G·H, kept); the GPU in the device slots.
                let k = C::kept(5);
                assert!(k <= C::SLOTS * 5, "{cell:?}: kept {k}");
                if let Some(late) = C::LATE {
                    assert_eq!(late + 1, C::GATES, "{cell:?}: the late gate is the last");
                    if !C::FOLD {
                        panic!("{cell:?}: a cell with a late gate folds its biases");
                    }
                }
            });
        }
    }
}

pub(crate) mod gru;
pub(crate) mod lstm;
pub(crate) mod rnn;

use crate::real::Real;

/// One batch row of a forward step. Slices are `H` long unless said otherwise; cells
/// without a cell state get empty `c_prev` and `c`.
pub(crate) struct RowFwd<'a, A> {
    /// On entry the pre-activations `x·W_ihᵀ + b_ih` (plus `h·W_hhᵀ + b_hh` when the cell
    /// folds, see [`CellDef::FOLD`]) in the first `G·H` entries; on exit what backward
    /// keeps ([`CellDef::kept`] entries).
    pub g: &'a mut [A],
    /// `h_{t-1}·W_hhᵀ + b_hh` (`G·H`), for cells that do not fold; empty otherwise.
    pub hw: &'a [A],
    pub h_prev: &'a [A],
    pub c_prev: &'a [A],
    pub c: &'a mut [A],
    pub h: &'a mut [A],
}

/// One batch row of a backward step.
pub(crate) struct RowBwd<'a, A> {
    /// What the forward kept ([`CellDef::kept`] entries; empty when it keeps nothing).
    pub kept: &'a [A],
    pub h: &'a [A],
    pub h_prev: &'a [A],
    pub c: &'a [A],
    pub c_prev: &'a [A],
    /// The gradient reaching `h_t`: upstream plus the recurrent carry.
    pub dh: &'a [A],
    /// The cell-state carry: `∂L/∂c_t` on entry, `∂L/∂c_{t-1}` on exit.
    pub dc: &'a mut [A],
    /// Gradient of the input-side pre-activations (`G·H`).
    pub dg: &'a mut [A],
    /// Gradient of the recurrent-side pre-activations (`G·H`), for cells that do not
    /// fold (the same as `dg` otherwise, and empty).
    pub dgh: &'a mut [A],
    /// The part of `∂L/∂h_{t-1}` that does not pass through `W_hh` (cells that do not
    /// fold; empty otherwise). Zero on entry.
    pub direct: &'a mut [A],
}

/// One batch row of a backward step's late part (cells with a [`CellDef::LATE`] gate).
pub(crate) struct LateBwd<'a, A> {
    /// What the forward kept.
    pub kept: &'a [A],
    pub h_prev: &'a [A],
    /// `∂L/∂ĥ` (`H`).
    pub m: &'a [A],
    /// The gate gradients (`G·H`), completed here.
    pub dg: &'a mut [A],
    /// The part of `∂L/∂h_{t-1}` that does not pass through `W_hh`; added to.
    pub direct: &'a mut [A],
    /// `ĥ` (`H`), written.
    pub gated: &'a mut [A],
}

/// What a GPU step kernel binds, in binding order: the engine maps each role to its
/// buffer, so a cell's kernels choose their bindings without engine code per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The step kernels' dimensions uniform.
    Dims,
    /// The step schedule's entry (a uniform selected by dynamic offset).
    Steps,
    /// Forward: the input projection `[T, B, H, S]`, overwritten in training by what
    /// backward keeps.
    Xw,
    /// Forward recurrent weights `[H, H, S]`.
    WFwd,
    /// Hidden states `[T + 1, B, H]`, slot 0 = h0.
    Hs,
    /// Cell states (cells that have one).
    Cs,
    /// The recurrent bias of slots where `b_hh` does not fold (`[H, S]`).
    BiasHh,
    /// Backward: what forward kept `[T, B, H, S]`.
    Kept,
    /// Backward: the upstream gradient `[T, B, H]`.
    Dh,
    /// Backward recurrent weights `[H, H, S]`.
    WBack,
    /// Backward: the gate gradients `[T, B, H, S]`.
    Dg,
    /// Backward: a carry of the cell's own (`c̄` of the LSTM, the GRU's direct part).
    Carry,
    /// Backward: the gradient of h0.
    Dh0,
    /// Forward: the gated state `ĥ = r ⊙ h_{t-1}` of a cell with a late gate (`[B, H]`
    /// scratch, made by one phase of the step and read by the next).
    Gated,
    /// Backward: the gate gradients masked to the late gate (`[T, B, H, S]`), for the
    /// weight gradient of its rows of `W_hh`, which meet `ĥ`, not `h_{t-1}`.
    DgGated,
    /// Backward: `ĥ − h_{t-1}` (`[T, B, H]`): `dW_hh = dGᵀ·H_prev + dG_lateᵀ·(Ĥ − H_prev)`.
    GatedDelta,
}

/// One kernel of a cell's step: its WGSL (a template, see `crate::shaders::expand`) and
/// its bindings in binding order.
#[derive(Debug)]
pub(crate) struct Phase {
    /// The kernel's source, with the shared prelude.
    pub src: &'static str,
    /// The buffers it binds, by role, in binding order.
    pub binds: &'static [Role],
}

/// What an engine needs of a cell.
pub(crate) trait CellDef {
    /// Lower-case name.
    const NAME: &'static str;
    /// Gate blocks `G` stacked in the weights.
    const GATES: usize;
    /// Whether the cell has a cell state `c` beside `h`.
    const HAS_C: bool;
    /// Whether `h·W_hhᵀ + b_hh` is summed into the input projection before the
    /// elementwise step (tanh RNN, LSTM: both biases fold into one), or handed to the
    /// cell apart (GRU: `b_hn` and `W_hn h` sit inside `r ⊙ (…)`). A folding cell's
    /// input- and recurrent-side gate gradients are the same.
    const FOLD: bool;
    /// Entries per batch row a training forward keeps for backward (`0`: nothing; the
    /// tanh RNN's backward needs only `h`).
    fn kept(hidden: usize) -> usize;
    /// Forward one batch row.
    fn forward_row<A: Real>(row: RowFwd<'_, A>);
    /// Backward one batch row.
    fn backward_row<A: Real>(row: RowBwd<'_, A>);

    /// The gate whose recurrent product meets a state the cell gates first,
    /// `ĥ = r ⊙ h_{t-1}` (the lecture's GRU: the reset gate acts before `W_hn`), or
    /// `None`. It must be the last gate: the engines multiply `h_{t-1}` by the rows of
    /// `W_hh` before it, let the cell make `ĥ` ([`CellDef::gate_state`]), then multiply
    /// `ĥ` by the late gate's rows; backward mirrors it ([`CellDef::backward_late`]).
    /// Such a cell folds its biases ([`CellDef::FOLD`]).
    const LATE: Option<usize> = None;
    /// For a cell with a [`CellDef::LATE`] gate, one batch row: `ĥ` from the
    /// pre-activations `g` of the gates before it (their recurrent products added) and
    /// `h_{t-1}`.
    fn gate_state<A: Real>(_g: &[A], _h_prev: &[A], _gated: &mut [A]) {}
    /// For a cell with a [`CellDef::LATE`] gate, one batch row after
    /// [`CellDef::backward_row`]: given `m = ∂L/∂ĥ` (the late gate's gradient through
    /// its rows of `W_hh`), completes the gradients `dg` of the gates that made `ĥ`, adds
    /// the part of `∂L/∂h_{t-1}` through `ĥ` to `direct`, and writes `ĥ` (for `dW_hh`).
    fn backward_late<A: Real>(_row: LateBwd<'_, A>) {}

    /// Device slots per hidden unit: the gates of a unit interleaved (one vec4 for the
    /// LSTM and the GRU), padded where a gate sits on one side only.
    const SLOTS: usize;
    /// For each device slot, the gate block of `W_ih`/`b_ih` it holds (`None`: zeros).
    const IH: &'static [Option<usize>];
    /// For each device slot, the gate block of `W_hh` it holds (`None`: zeros). Where a
    /// slot holds the same block on both sides `b_hh` folds into the projection's bias;
    /// elsewhere it reaches the step kernel apart ([`Role::BiasHh`]).
    const HH: &'static [Option<usize>];
    /// The forward step's kernels, dispatched in this order for every step (one for a
    /// cell whose recurrent product needs nothing computed in the same step).
    const STEP: &'static [Phase];
    /// The backward step's kernels, dispatched in this order for every step; the final
    /// dispatch, which writes `dh0`, runs the first alone.
    const STEP_BACK: &'static [Phase];
}

/// Whether some slot of `C` keeps its recurrent bias apart from the projection.
pub(crate) fn bias_apart<C: CellDef>() -> bool {
    C::IH.iter().zip(C::HH).any(|(i, h)| h.is_some() && h != i)
}

/// Runs `$body` with the type `$C` bound to the [`CellDef`] of `$cell`: the one place
/// that lists the cells.
macro_rules! with_cell {
    ($cell:expr, $C:ident => $body:expr) => {
        match $cell {
            $crate::params::Cell::Rnn => {
                type $C = $crate::cell::rnn::Rnn;
                $body
            }
            $crate::params::Cell::Lstm => {
                type $C = $crate::cell::lstm::Lstm;
                $body
            }
            $crate::params::Cell::Gru { reset_after: true } => {
                type $C = $crate::cell::gru::Gru;
                $body
            }
            $crate::params::Cell::Gru { reset_after: false } => {
                type $C = $crate::cell::gru::GruResetBefore;
                $body
            }
        }
    };
}
pub(crate) use with_cell;
