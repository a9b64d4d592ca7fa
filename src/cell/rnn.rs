//! The tanh RNN: `h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)` (one gate block).

use super::Role::*;
use super::{CellDef, Phase, RowBwd, RowFwd};
use crate::real::Real;

/// The tanh (Elman) RNN.
pub(crate) struct Rnn;

impl CellDef for Rnn {
    const NAME: &'static str = "rnn";
    const GATES: usize = 1;
    const HAS_C: bool = false;
    const FOLD: bool = true;

    fn kept(_hidden: usize) -> usize {
        0
    }

    /// `h_t = tanh(pre)`.
    #[inline(always)]
    fn forward_row<A: Real>(row: RowFwd<'_, A>) {
        for (h, &z) in row.h.iter_mut().zip(row.g.iter()) {
            *h = z.tanh();
        }
    }

    /// `dG_t = (1 - h_t²) ⊙ (dH_t + carry)`.
    #[inline(always)]
    fn backward_row<A: Real>(row: RowBwd<'_, A>) {
        for ((d, &h), &g) in row.dg.iter_mut().zip(row.h).zip(row.dh) {
            *d = (A::one() - h * h) * g;
        }
    }

    const SLOTS: usize = 1;
    const IH: &'static [Option<usize>] = &[Some(0)];
    const HH: &'static [Option<usize>] = &[Some(0)];
    const STEP: &'static [Phase] = &[Phase {
        src: crate::shaders::RNN_STEP,
        binds: &[Dims, Steps, Xw, WFwd, Hs],
    }];
    const STEP_BACK: &'static [Phase] = &[Phase {
        src: crate::shaders::RNN_STEP_BACK,
        binds: &[Dims, Steps, Hs, Dh, WBack, Dg, Dh0],
    }];
}
