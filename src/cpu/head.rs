//! The output head `softmax(W_y h + b_y)` (mirrors `head.wgsl`).

use ndarray::{Array3, ArrayView3, ArrayViewMut2, Axis};

use crate::error::{Error, Result};
use crate::params::Head;
use crate::real::Real;

/// Applies the head to every step of `h [T, B, H]`: `y [T, B, C]`, a softmax over the
/// class axis (the last), each row shifted by its own max so no logit overflows.
pub fn head_forward<A: Real>(head: &Head<A>, h: ArrayView3<A>) -> Result<Array3<A>> {
    Ok(logits_and_probs(head, h)?.1)
}

/// Softmax of every row of `z` in place, each row shifted by its own max.
/// Rows of width zero are left as they are (there is nothing to normalise).
pub fn softmax_last_axis<A: Real>(mut z: ArrayViewMut2<A>) {
    for mut row in z.axis_iter_mut(Axis(0)) {
        let Some(&first) = row.first() else { continue };
        let m = row.iter().fold(first, |m, &v| m.max(v));
        let mut sum = A::zero();
        row.mapv_inplace(|v| {
            let e = (v - m).exp();
            sum += e;
            e
        });
        row.mapv_inplace(|v| v / sum);
    }
}

/// How a loss over positions is reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// The mean over the positions that count (PyTorch's default).
    Mean,
    /// The sum over them (the course notebook's loss summed over steps).
    Sum,
}

/// The result of [`head_loss`].
#[derive(Debug, Clone, PartialEq)]
pub struct HeadLoss<A> {
    /// The reduced cross-entropy.
    pub loss: A,
    /// `softmax(W_y h + b_y)` at every position `[T, B, C]`.
    pub probs: Array3<A>,
    /// Positions that count (targets other than the ignore index).
    pub counted: usize,
}

/// Gradients of [`head_loss`].
#[derive(Debug, Clone, PartialEq)]
pub struct HeadGrads<A> {
    /// `[T, B, H]`: what the network's backward takes as its output gradient.
    pub dh: Array3<A>,
    /// `[C, H]`.
    pub dw_y: ndarray::Array2<A>,
    /// `[C]`.
    pub db_y: ndarray::Array1<A>,
}

/// Checks `targets [T, B]` against `h`'s steps and batch and the head's classes; returns
/// the positions that count.
pub(crate) fn check_targets(
    targets: &ndarray::ArrayView2<usize>,
    t: usize,
    b: usize,
    classes: usize,
    ignore_index: Option<usize>,
) -> Result<usize> {
    crate::error::check_shape("targets", "[T, B]", &[t, b], targets.shape())?;
    let mut counted = 0;
    for &k in targets.iter() {
        if Some(k) == ignore_index {
            continue;
        }
        if k >= classes {
            return Err(Error::Invalid {
                arg: "targets",
                msg: format!("class {k}; the head has {classes} classes (0..{classes})"),
            });
        }
        counted += 1;
    }
    Ok(counted)
}

/// The output head fused with softmax cross-entropy: at every position of `h [T, B, H]`,
/// `−ln softmax(W_y h + b_y)[target]`, computed as `logsumexp(z) − z[target]` (finite for
/// logits of any finite size), positions whose target is `ignore_index` left out, then
/// the mean over the positions that count (or their sum, the notebook's form).
pub fn head_loss<A: Real>(
    head: &Head<A>,
    h: ArrayView3<A>,
    targets: ndarray::ArrayView2<usize>,
    ignore_index: Option<usize>,
    reduction: Reduction,
) -> Result<HeadLoss<A>> {
    let (t, b, _) = h.dim();
    let c = head.classes();
    let counted = check_targets(&targets, t, b, c, ignore_index)?;
    let (logits, probs) = logits_and_probs(head, h)?;
    let mut total = A::zero();
    for ((tt, bb), &k) in targets.indexed_iter() {
        if Some(k) == ignore_index {
            continue;
        }
        let z = logits.slice(ndarray::s![tt, bb, ..]);
        let m = z.iter().fold(z[0], |m, &v| m.max(v));
        let lse = m + z.iter().fold(A::zero(), |s, &v| s + (v - m).exp()).ln();
        total += lse - z[k];
    }
    let loss = match reduction {
        Reduction::Sum => total,
        Reduction::Mean if counted == 0 => A::zero(),
        Reduction::Mean => total / A::from_f64(counted as f64),
    };
    Ok(HeadLoss {
        loss,
        probs,
        counted,
    })
}

/// The logits `W_y h + b_y` and their softmax `[T, B, C]`.
fn logits_and_probs<A: Real>(head: &Head<A>, h: ArrayView3<A>) -> Result<(Array3<A>, Array3<A>)> {
    head.check()?;
    let (t, b, hs) = h.dim();
    if t == 0 || b == 0 || hs != head.w_y.ncols() {
        return Err(Error::Shape {
            arg: "h",
            expected: format!("[T, B, H] with T ≥ 1, B ≥ 1, H = {}", head.w_y.ncols()),
            got: crate::error::fmt_shape(h.shape()),
        });
    }
    let c = head.classes();
    let h = crate::host::copy("h", &h)?;
    let h2 = h
        .view()
        .into_shape_with_order((t * b, hs))
        .expect("standard layout");
    let rows = crate::host::elems("h", &[t, b], 1)?;
    let mut z = crate::host::tiled("h", rows, &head.b_y)?;
    A::gemm(h2, head.w_y.t(), true, z.view_mut());
    let mut p = z.clone();
    softmax_last_axis(p.view_mut());
    let shape = (t, b, c);
    Ok((
        z.into_shape_with_order(shape).expect("standard layout"),
        p.into_shape_with_order(shape).expect("standard layout"),
    ))
}

/// Backward of [`head_loss`] (the same arguments and its result): `dlogits = (softmax −
/// onehot(target))` scaled by the reduction (zero where the target is ignored), then
/// `dW_y = dlogitsᵀ·h`, `db_y = Σ dlogits`, `dh = dlogits·W_y`.
pub fn head_loss_backward<A: Real>(
    head: &Head<A>,
    h: ArrayView3<A>,
    targets: ndarray::ArrayView2<usize>,
    ignore_index: Option<usize>,
    reduction: Reduction,
    out: &HeadLoss<A>,
) -> Result<HeadGrads<A>> {
    head.check()?;
    let (t, b, hs) = h.dim();
    let c = head.classes();
    let counted = check_targets(&targets, t, b, c, ignore_index)?;
    crate::error::check_shape("out.probs", "[T, B, C]", &[t, b, c], out.probs.shape())?;
    let scale = match reduction {
        Reduction::Mean if counted > 0 => A::one() / A::from_f64(counted as f64),
        _ => A::one(),
    };
    let mut d = crate::host::copy("out.probs", &out.probs.view())?;
    for ((tt, bb), &k) in targets.indexed_iter() {
        let mut row = d.slice_mut(ndarray::s![tt, bb, ..]);
        if Some(k) == ignore_index {
            row.fill(A::zero());
            continue;
        }
        row[k] -= A::one();
        row.mapv_inplace(|v| v * scale);
    }
    let h = crate::host::copy("h", &h)?;
    let rows = t * b;
    let h2 = h
        .view()
        .into_shape_with_order((rows, hs))
        .expect("standard layout");
    let d2 = d
        .view()
        .into_shape_with_order((rows, c))
        .expect("standard layout");
    let mut dw_y = crate::host::zeros("h", (c, hs))?;
    A::gemm(d2.t(), h2.view(), false, dw_y.view_mut());
    let db_y = d2.sum_axis(Axis(0));
    let mut dh = crate::host::zeros("h", (rows, hs))?;
    A::gemm(d2, head.w_y.view(), false, dh.view_mut());
    Ok(HeadGrads {
        dh: dh
            .into_shape_with_order((t, b, hs))
            .expect("standard layout"),
        dw_y,
        db_y,
    })
}
