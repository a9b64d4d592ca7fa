//! Elementwise parts of the LSTM step (mirrors `lstm_step.wgsl` and
//! `lstm_step_back.wgsl`). Gate blocks in PyTorch's order i, f, g, o.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::real::Real;

/// The rows of a standard-layout 2-D view as slices.
fn rows<'a, A>(v: &'a ArrayView2<A>) -> impl Iterator<Item = &'a [A]> {
    let n = v.ncols().max(1);
    v.as_slice().expect("standard layout").chunks(n)
}

/// The rows of a standard-layout 2-D view as mutable slices.
fn rows_mut<'a, A>(v: &'a mut ArrayViewMut2<A>) -> impl Iterator<Item = &'a mut [A]> {
    let n = v.ncols().max(1);
    v.as_slice_mut().expect("standard layout").chunks_mut(n)
}

/// Activates the four gate blocks of `gates [B, 4H]` in place (pre-activations in,
/// activations out), then `c_t = f⊙c_{t-1} + i⊙g` and `h_t = o⊙tanh(c_t)`.
/// All views are in standard layout.
pub(super) fn step_forward<A: Real>(
    mut gates: ArrayViewMut2<A>,
    c_prev: ArrayView2<A>,
    mut c_t: ArrayViewMut2<A>,
    mut h_t: ArrayViewMut2<A>,
) {
    let hs = c_prev.ncols();
    for (((g, cp), c), h) in rows_mut(&mut gates)
        .zip(rows(&c_prev))
        .zip(rows_mut(&mut c_t))
        .zip(rows_mut(&mut h_t))
    {
        let (gi, rest) = g.split_at_mut(hs);
        let (gf, rest) = rest.split_at_mut(hs);
        let (gg, go) = rest.split_at_mut(hs);
        for j in 0..hs {
            let i = gi[j].sigmoid();
            let f = gf[j].sigmoid();
            let g = gg[j].tanh();
            let o = go[j].sigmoid();
            gi[j] = i;
            gf[j] = f;
            gg[j] = g;
            go[j] = o;
            let cn = f * cp[j] + i * g;
            c[j] = cn;
            h[j] = o * cn.tanh();
        }
    }
}

/// Gate gradients of one step. `dh_t + carry` is the gradient reaching `h_t`; `dc` holds
/// the cell carry `c̄` on entry and the carry for step `t-1` on exit; `dg_t [B, 4H]`
/// receives `d_i, d_f, d_g, d_o` (gradients of the pre-activations). `dh_t` may have any
/// layout; the other views are in standard layout.
pub(super) fn step_backward<A: Real>(
    gates: ArrayView2<A>,
    c_t: ArrayView2<A>,
    c_prev: ArrayView2<A>,
    dh_t: ArrayView2<A>,
    carry: ArrayView2<A>,
    mut dc: ArrayViewMut2<A>,
    mut dg_t: ArrayViewMut2<A>,
) {
    let hs = c_t.ncols();
    let one = A::one();
    for (b, ((((g, ct), cp), (car, dcr)), d)) in rows(&gates)
        .zip(rows(&c_t))
        .zip(rows(&c_prev))
        .zip(rows(&carry).zip(rows_mut(&mut dc)))
        .zip(rows_mut(&mut dg_t))
        .enumerate()
    {
        let dh = dh_t.row(b);
        let (di, rest) = d.split_at_mut(hs);
        let (df, rest) = rest.split_at_mut(hs);
        let (dg, d_o) = rest.split_at_mut(hs);
        for j in 0..hs {
            let (i, f, g, o) = (g[j], g[hs + j], g[2 * hs + j], g[3 * hs + j]);
            let tc = ct[j].tanh();
            let gh = dh[j] + car[j];
            let dcn = dcr[j] + gh * o * (one - tc * tc);
            di[j] = dcn * g * i * (one - i);
            df[j] = dcn * cp[j] * f * (one - f);
            dg[j] = dcn * i * (one - g * g);
            d_o[j] = gh * tc * o * (one - o);
            dcr[j] = dcn * f;
        }
    }
}
