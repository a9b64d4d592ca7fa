//! Elementwise parts of the tanh RNN step (mirrors `rnn_step.wgsl` and
//! `rnn_step_back.wgsl`).

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

use crate::real::Real;

/// `h_t = tanh(pre)`, where `pre = XW_t + h_{t-1}·W_hhᵀ` is already summed.
pub(super) fn step_forward<A: Real>(pre: ArrayView2<A>, h_t: ArrayViewMut2<A>) {
    Zip::from(h_t).and(&pre).for_each(|h, &z| *h = z.tanh());
}

/// `dG_t = (1 - h_t²) ⊙ (dH_t + carry)`.
pub(super) fn step_backward<A: Real>(
    h_t: ArrayView2<A>,
    dh_t: ArrayView2<A>,
    carry: ArrayView2<A>,
    dg_t: ArrayViewMut2<A>,
) {
    Zip::from(dg_t)
        .and(&h_t)
        .and(&dh_t)
        .and(&carry)
        .for_each(|d, &h, &g, &a| *d = (A::one() - h * h) * (g + a));
}
