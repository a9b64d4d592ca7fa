//! The output head `softmax(W_y h + b_y)` (mirrors `head.wgsl`).

use ndarray::linalg::general_mat_mul;
use ndarray::{Array3, ArrayView3, ArrayViewMut2, Axis};

use crate::error::{Error, Result};
use crate::params::Head;
use crate::real::Real;

/// Applies the head to every step of `h [T, B, H]`: `y [T, B, C]`, a softmax over the
/// class axis (the last), each row shifted by its own max so no logit overflows.
pub fn head_forward<A: Real>(head: &Head<A>, h: ArrayView3<A>) -> Result<Array3<A>> {
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
    let mut y = crate::host::tiled("h", rows, &head.b_y)?;
    general_mat_mul(A::one(), &h2, &head.w_y.t(), A::one(), &mut y);
    softmax_last_axis(y.view_mut());
    Ok(y.into_shape_with_order((t, b, c)).expect("standard layout"))
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
