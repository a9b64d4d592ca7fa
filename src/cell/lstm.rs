//! The LSTM, PyTorch's gate order i, f, g, o:
//! `c_t = σ(f)⊙c_{t-1} + σ(i)⊙tanh(g)`, `h_t = σ(o)⊙tanh(c_t)`.

use super::Role::*;
use super::{CellDef, Phase, RowBwd, RowFwd};
use crate::real::Real;

/// The LSTM.
pub(crate) struct Lstm;

impl CellDef for Lstm {
    const NAME: &'static str = "lstm";
    const GATES: usize = 4;
    const HAS_C: bool = true;
    const FOLD: bool = true;

    /// The four activated gates.
    fn kept(hidden: usize) -> usize {
        4 * hidden
    }

    /// Activates the four gate blocks in place (pre-activations in, activations out),
    /// then `c_t = f⊙c_{t-1} + i⊙g` and `h_t = o⊙tanh(c_t)`.
    #[inline(always)]
    fn forward_row<A: Real>(row: RowFwd<'_, A>) {
        let hs = row.h.len();
        let (gi, rest) = row.g.split_at_mut(hs);
        let (gf, rest) = rest.split_at_mut(hs);
        let (gg, go) = rest.split_at_mut(hs);
        // Every slice exactly hs long: no bounds checks in the loop, which vectorizes.
        let (gi, gf, gg, go) = (&mut gi[..hs], &mut gf[..hs], &mut gg[..hs], &mut go[..hs]);
        let (c_prev, c, h) = (&row.c_prev[..hs], &mut row.c[..hs], &mut row.h[..hs]);
        for j in 0..hs {
            let i = gi[j].sigmoid();
            let f = gf[j].sigmoid();
            let g = gg[j].tanh();
            let o = go[j].sigmoid();
            gi[j] = i;
            gf[j] = f;
            gg[j] = g;
            go[j] = o;
            let cn = f * c_prev[j] + i * g;
            c[j] = cn;
            h[j] = o * cn.tanh();
        }
    }

    /// Gate gradients `d_i, d_f, d_g, d_o` of the pre-activations, and the cell carry.
    #[inline(always)]
    fn backward_row<A: Real>(row: RowBwd<'_, A>) {
        let hs = row.h.len();
        let one = A::one();
        let g = row.kept;
        let (di, rest) = row.dg.split_at_mut(hs);
        let (df, rest) = rest.split_at_mut(hs);
        let (dg, d_o) = rest.split_at_mut(hs);
        let (di, df, dg, d_o) = (&mut di[..hs], &mut df[..hs], &mut dg[..hs], &mut d_o[..hs]);
        let (gi, gf, gg_, go) = (
            &g[..hs],
            &g[hs..2 * hs],
            &g[2 * hs..3 * hs],
            &g[3 * hs..4 * hs],
        );
        let (c, c_prev, dh, dc) = (
            &row.c[..hs],
            &row.c_prev[..hs],
            &row.dh[..hs],
            &mut row.dc[..hs],
        );
        for j in 0..hs {
            let (i, f, gg, o) = (gi[j], gf[j], gg_[j], go[j]);
            let tc = c[j].tanh();
            let gh = dh[j];
            let dcn = dc[j] + gh * o * (one - tc * tc);
            di[j] = dcn * gg * i * (one - i);
            df[j] = dcn * c_prev[j] * f * (one - f);
            dg[j] = dcn * i * (one - gg * gg);
            d_o[j] = gh * tc * o * (one - o);
            dc[j] = dcn * f;
        }
    }

    const SLOTS: usize = 4;
    const IH: &'static [Option<usize>] = &[Some(0), Some(1), Some(2), Some(3)];
    const HH: &'static [Option<usize>] = &[Some(0), Some(1), Some(2), Some(3)];
    const STEP: &'static [Phase] = &[Phase {
        src: crate::shaders::LSTM_STEP,
        binds: &[Dims, Steps, Xw, WFwd, Hs, Cs],
    }];
    const STEP_BACK: &'static [Phase] = &[Phase {
        src: crate::shaders::LSTM_STEP_BACK,
        binds: &[Dims, Steps, Kept, Cs, Dh, WBack, Dg, Carry, Dh0],
    }];
}
