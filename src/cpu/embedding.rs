//! Token input: an embedding lookup for token ids, and its backward, which sums the
//! gradient rows of each token in the order of its positions (the GPU kernel sums in the
//! same order: the same bits run to run, no atomics).

use ndarray::{Array2, Array3, ArrayView2, ArrayView3};

use crate::error::{check_shape, fmt_shape, Error, Result};
use crate::host;
use crate::real::Real;

/// Checks `ids [T, B]` against a vocabulary of `vocab` tokens.
pub(crate) fn check_ids(ids: &ArrayView2<usize>, vocab: usize) -> Result<()> {
    let (t, b) = ids.dim();
    if t == 0 || b == 0 {
        return Err(Error::Shape {
            arg: "ids",
            expected: "[T, B] with T ≥ 1, B ≥ 1".into(),
            got: fmt_shape(ids.shape()),
        });
    }
    if let Some(((i, j), &v)) = ids.indexed_iter().find(|(_, &v)| v >= vocab) {
        return Err(Error::Invalid {
            arg: "ids",
            msg: format!("ids[{i}][{j}] = {v}; the vocabulary has {vocab} tokens (0..{vocab})"),
        });
    }
    Ok(())
}

/// `out[t, b] = weight[ids[t, b]]`: `weight [V, E]`, `ids [T, B]` → `[T, B, E]`.
pub fn embedding<A: Real>(weight: ArrayView2<A>, ids: ArrayView2<usize>) -> Result<Array3<A>> {
    let (v, e) = weight.dim();
    if v == 0 || e == 0 {
        return Err(Error::Shape {
            arg: "weight",
            expected: "[V, E] with V ≥ 1, E ≥ 1".into(),
            got: fmt_shape(weight.shape()),
        });
    }
    check_ids(&ids, v)?;
    let (t, b) = ids.dim();
    let mut out = host::zeros::<A, _, _>("ids", (t, b, e))?;
    for ((i, j), &tok) in ids.indexed_iter() {
        out.slice_mut(ndarray::s![i, j, ..])
            .assign(&weight.row(tok));
    }
    Ok(out)
}

/// The backward of [`embedding`] for a vocabulary of `vocab` tokens: `dW [V, E]`, row `v`
/// the sum of `d_out [T, B, E]` over the positions whose token is `v`, in position order
/// (row-major over `[T, B]`).
pub fn embedding_backward<A: Real>(
    vocab: usize,
    ids: ArrayView2<usize>,
    d_out: ArrayView3<A>,
) -> Result<Array2<A>> {
    check_ids(&ids, vocab)?;
    let (t, b) = ids.dim();
    let e = d_out.dim().2;
    check_shape("d_out", "[T, B, E]", &[t, b, e], d_out.shape())?;
    let mut dw = host::zeros::<A, _, _>("d_out", (vocab, e))?;
    for ((i, j), &tok) in ids.indexed_iter() {
        let mut row = dw.row_mut(tok);
        row += &d_out.slice(ndarray::s![i, j, ..]);
    }
    Ok(dw)
}
