//! The GRU with PyTorch's `nn.GRU` equations, gate order r, z, n:
//! `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + b_iz + W_hz h + b_hz)`,
//! `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`.
//! The reset gate acts after the recurrent product, so `W_hh h + b_hh` reaches the cell
//! apart from the input projection ([`CellDef::FOLD`] is false).
//!
//! Also the lecture's variant, [`GruResetBefore`] (the reset before the product), the
//! other value of the GRU's `reset_after` option.

use super::Role::*;
use super::{CellDef, LateBwd, Phase, RowBwd, RowFwd};
use crate::real::Real;

/// The first three gate blocks of `H` entries of a row, and the rest (empty when the
/// row holds no more).
fn blocks<T>(row: &mut [T], hs: usize) -> [&mut [T]; 4] {
    let (a, rest) = row.split_at_mut(hs.min(row.len()));
    let (b, rest) = rest.split_at_mut(hs.min(rest.len()));
    let (c, d) = rest.split_at_mut(hs.min(rest.len()));
    [a, b, c, d]
}

/// Both variants' update `h' = (1 − z) n + z h`.
fn update<A: Real>(z: A, n: A, h: A) -> A {
    (A::one() - z) * n + z * h
}

/// Both variants' gradients of the update's gates from `g = ∂L/∂h'`: the update gate's
/// pre-activation `d_z = g (h − n) z(1 − z)` and the candidate's `d_n = g (1 − z)(1 − n²)`.
fn update_grads<A: Real>(g: A, z: A, n: A, h: A) -> (A, A) {
    let one = A::one();
    (g * (h - n) * z * (one - z), g * (one - z) * (one - n * n))
}

/// The GRU (PyTorch's, reset after the product).
pub(crate) struct Gru;

impl CellDef for Gru {
    const NAME: &'static str = "gru";
    const GATES: usize = 3;
    const HAS_C: bool = false;
    const FOLD: bool = false;

    /// `r, z, n` and `W_hn h + b_hn` (backward needs it for `∂L/∂r`).
    fn kept(hidden: usize) -> usize {
        4 * hidden
    }

    #[inline(always)]
    fn forward_row<A: Real>(row: RowFwd<'_, A>) {
        let hs = row.h.len();
        let [gr, gz, gn, ghn] = blocks(row.g, hs);
        let (hr, rest) = row.hw.split_at(hs);
        let (hz, hn) = rest.split_at(hs);
        // Every slice exactly hs long: no bounds checks in the loop, which vectorizes.
        let (gr, gz, gn, ghn) = (&mut gr[..hs], &mut gz[..hs], &mut gn[..hs], &mut ghn[..hs]);
        let (hr, hz, hn) = (&hr[..hs], &hz[..hs], &hn[..hs]);
        let (h, h_prev) = (&mut row.h[..hs], &row.h_prev[..hs]);
        for j in 0..hs {
            let r = (gr[j] + hr[j]).sigmoid();
            let z = (gz[j] + hz[j]).sigmoid();
            let n = (gn[j] + r * hn[j]).tanh();
            (gr[j], gz[j], gn[j], ghn[j]) = (r, z, n, hn[j]);
            h[j] = update(z, n, h_prev[j]);
        }
    }

    /// With `g = ∂L/∂h'`: `∂n = g(1 − z)`, `∂z = g(h − n)`, direct `∂h = g z`;
    /// `d_n = ∂n (1 − n²)` on the input side and `d_n ⊙ r` on the recurrent side;
    /// `d_r = d_n · (W_hn h + b_hn) · r(1 − r)`, `d_z = ∂z · z(1 − z)` on both.
    #[inline(always)]
    fn backward_row<A: Real>(row: RowBwd<'_, A>) {
        let hs = row.h.len();
        let k = row.kept;
        let [dr, dz, dn, _] = blocks(row.dg, hs);
        let [dhr, dhz, dhn, _] = blocks(row.dgh, hs);
        let (dr, dz, dn) = (&mut dr[..hs], &mut dz[..hs], &mut dn[..hs]);
        let (dhr, dhz, dhn) = (&mut dhr[..hs], &mut dhz[..hs], &mut dhn[..hs]);
        let (kr, kz, kn, khn) = (
            &k[..hs],
            &k[hs..2 * hs],
            &k[2 * hs..3 * hs],
            &k[3 * hs..4 * hs],
        );
        let (dh, h_prev, direct) = (&row.dh[..hs], &row.h_prev[..hs], &mut row.direct[..hs]);
        for j in 0..hs {
            let (r, z, n, hn) = (kr[j], kz[j], kn[j], khn[j]);
            let g = dh[j];
            let (d_z, d_n) = update_grads(g, z, n, h_prev[j]);
            let d_r = d_n * hn * r * (A::one() - r);
            (dr[j], dz[j], dn[j]) = (d_r, d_z, d_n);
            (dhr[j], dhz[j], dhn[j]) = (d_r, d_z, d_n * r);
            direct[j] = g * z;
        }
    }

    /// Slots (r, z, n, hn): the input side's n in slot 2, the recurrent side's in slot 3
    /// (with `b_hn`, which stays inside `r ⊙ (…)`).
    const SLOTS: usize = 4;
    const IH: &'static [Option<usize>] = &[Some(0), Some(1), Some(2), None];
    const HH: &'static [Option<usize>] = &[Some(0), Some(1), None, Some(2)];
    const STEP: &'static [Phase] = &[Phase {
        src: crate::shaders::GRU_STEP,
        binds: &[Dims, Steps, Xw, WFwd, Hs, BiasHh],
    }];
    const STEP_BACK: &'static [Phase] = &[Phase {
        src: crate::shaders::GRU_STEP_BACK,
        binds: &[Dims, Steps, Kept, Hs, Dh, WBack, Dg, Carry, Dh0],
    }];
}

/// The lecture's GRU (Keras's `reset_after=False`): the reset gate acts on the state
/// before the product, `n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)`, with r, z and
/// `h' = (1 − z) ⊙ n + z ⊙ h` as in [`Gru`]. Both biases fold; `W_hn` meets the gated
/// state `ĥ = r ⊙ h` ([`CellDef::LATE`]), so a GPU step takes two dispatches (the
/// candidate needs every unit's `ĥ`), and backward two.
pub(crate) struct GruResetBefore;

impl CellDef for GruResetBefore {
    const NAME: &'static str = "gru_reset_before";
    const GATES: usize = 3;
    const HAS_C: bool = false;
    const FOLD: bool = true;

    /// `r, z, n` (backward makes `ĥ` again from `r` and `h_{t-1}`).
    fn kept(hidden: usize) -> usize {
        3 * hidden
    }

    const LATE: Option<usize> = Some(2);

    /// `ĥ = σ(pre_r) ⊙ h_{t-1}`.
    fn gate_state<A: Real>(g: &[A], h_prev: &[A], gated: &mut [A]) {
        for ((o, &pre), &h) in gated.iter_mut().zip(g).zip(h_prev) {
            *o = pre.sigmoid() * h;
        }
    }

    #[inline(always)]
    fn forward_row<A: Real>(row: RowFwd<'_, A>) {
        let hs = row.h.len();
        let [gr, gz, gn, _] = blocks(row.g, hs);
        for j in 0..hs {
            let (r, z, n) = (gr[j].sigmoid(), gz[j].sigmoid(), gn[j].tanh());
            (gr[j], gz[j], gn[j]) = (r, z, n);
            row.h[j] = update(z, n, row.h_prev[j]);
        }
    }

    /// With `g = ∂L/∂h'`: `d_n = g(1 − z)(1 − n²)`, `d_z = g(h − n)z(1 − z)`, direct
    /// `∂h = g z`; `d_r` waits for `∂L/∂ĥ` ([`CellDef::backward_late`]).
    #[inline(always)]
    fn backward_row<A: Real>(row: RowBwd<'_, A>) {
        let hs = row.h.len();
        let k = row.kept;
        let [dr, dz, dn, _] = blocks(row.dg, hs);
        for j in 0..hs {
            let (z, n) = (k[hs + j], k[2 * hs + j]);
            let g = row.dh[j];
            let (d_z, d_n) = update_grads(g, z, n, row.h_prev[j]);
            (dr[j], dz[j], dn[j]) = (A::zero(), d_z, d_n);
            row.direct[j] = g * z;
        }
    }

    /// With `m = ∂L/∂ĥ`: `d_r = m h r(1 − r)`, direct `∂h += m r`.
    fn backward_late<A: Real>(row: LateBwd<'_, A>) {
        let hs = row.m.len();
        for j in 0..hs {
            let (r, h, m) = (row.kept[j], row.h_prev[j], row.m[j]);
            row.dg[j] = m * h * r * (A::one() - r);
            row.direct[j] += m * r;
            row.gated[j] = r * h;
        }
    }

    /// Slots (r, z, n, –): every gate on both sides, the fourth slot padding the vec4.
    const SLOTS: usize = 4;
    const IH: &'static [Option<usize>] = &[Some(0), Some(1), Some(2), None];
    const HH: &'static [Option<usize>] = &[Some(0), Some(1), Some(2), None];
    const STEP: &'static [Phase] = &[
        Phase {
            src: crate::shaders::GRU_BEFORE_STEP_GATE,
            binds: &[Dims, Steps, Xw, WFwd, Hs, Gated],
        },
        Phase {
            src: crate::shaders::GRU_BEFORE_STEP,
            binds: &[Dims, Steps, Xw, WFwd, Hs, Gated],
        },
    ];
    const STEP_BACK: &'static [Phase] = &[
        Phase {
            src: crate::shaders::GRU_BEFORE_STEP_BACK,
            binds: &[Dims, Steps, Kept, Hs, Dh, WBack, Dg, Carry, Dh0, DgGated],
        },
        Phase {
            src: crate::shaders::GRU_BEFORE_STEP_BACK_GATE,
            binds: &[Dims, Steps, Kept, Hs, WBack, Dg, Carry, GatedDelta],
        },
    ];
}
