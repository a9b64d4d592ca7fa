//! The GRU with PyTorch's `nn.GRU` equations, gate order r, z, n:
//! `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + b_iz + W_hz h + b_hz)`,
//! `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`.
//! The reset gate acts after the recurrent product, so `W_hh h + b_hh` reaches the cell
//! apart from the input projection ([`CellDef::FOLD`] is false).

use super::Role::*;
use super::{CellDef, Phase, RowBwd, RowFwd};
use crate::real::Real;

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

    fn forward_row<A: Real>(row: RowFwd<'_, A>) {
        let hs = row.h.len();
        let (gr, rest) = row.g.split_at_mut(hs);
        let (gz, rest) = rest.split_at_mut(hs);
        let (gn, ghn) = rest.split_at_mut(hs);
        let (hr, rest) = row.hw.split_at(hs);
        let (hz, hn) = rest.split_at(hs);
        for j in 0..hs {
            let r = (gr[j] + hr[j]).sigmoid();
            let z = (gz[j] + hz[j]).sigmoid();
            let n = (gn[j] + r * hn[j]).tanh();
            gr[j] = r;
            gz[j] = z;
            gn[j] = n;
            ghn[j] = hn[j];
            row.h[j] = (A::one() - z) * n + z * row.h_prev[j];
        }
    }

    /// With `g = ∂L/∂h'`: `∂n = g(1 − z)`, `∂z = g(h − n)`, direct `∂h = g z`;
    /// `d_n = ∂n (1 − n²)` on the input side and `d_n ⊙ r` on the recurrent side;
    /// `d_r = d_n · (W_hn h + b_hn) · r(1 − r)`, `d_z = ∂z · z(1 − z)` on both.
    fn backward_row<A: Real>(row: RowBwd<'_, A>) {
        let hs = row.h.len();
        let one = A::one();
        let k = row.kept;
        let (dr, rest) = row.dg.split_at_mut(hs);
        let (dz, dn) = rest.split_at_mut(hs);
        let (dhr, rest) = row.dgh.split_at_mut(hs);
        let (dhz, dhn) = rest.split_at_mut(hs);
        for j in 0..hs {
            let (r, z, n, hn) = (k[j], k[hs + j], k[2 * hs + j], k[3 * hs + j]);
            let g = row.dh[j];
            let d_n = g * (one - z) * (one - n * n);
            let d_z = g * (row.h_prev[j] - n) * z * (one - z);
            let d_r = d_n * hn * r * (one - r);
            dr[j] = d_r;
            dz[j] = d_z;
            dn[j] = d_n;
            dhr[j] = d_r;
            dhz[j] = d_z;
            dhn[j] = d_n * r;
            row.direct[j] = g * z;
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
