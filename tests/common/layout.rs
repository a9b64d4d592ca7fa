//! Arrays in every memory layout a user can hand in, and a panic guard for property tests.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ndarray::{Array, ArrayView, ArrayViewMut, Axis, Dimension, ShapeBuilder, Slice};
use proptest::test_runner::TestCaseError;

/// How an argument sits in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Row-major (C order).
    Standard,
    /// Column-major (F order), as a transposed array is.
    Transposed,
    /// Every other element of a larger array along the last axis.
    Stepped,
    /// Axis 0 stored backwards (a negative stride).
    Reversed,
    /// One slice along axis 0 repeated (stride 0): read-only.
    Broadcast,
}

pub const LAYOUTS: [Layout; 5] = [
    Layout::Standard,
    Layout::Transposed,
    Layout::Stepped,
    Layout::Reversed,
    Layout::Broadcast,
];

/// An array laid out as asked. For `Broadcast` the content is axis 0's first slice
/// repeated (so the reference must be taken from [`Laid::standard`], not the source).
pub struct Laid<A, D: Dimension> {
    owned: Array<A, D>,
    broadcast: Option<D>,
}

impl<A: Clone + Default, D: Dimension> Laid<A, D> {
    pub fn new(a: &Array<A, D>, layout: Layout) -> Self {
        let plain = Laid {
            owned: a.clone(),
            broadcast: None,
        };
        if a.ndim() == 0 || a.is_empty() {
            return plain;
        }
        match layout {
            Layout::Standard => plain,
            Layout::Transposed => {
                let mut f = Array::from_elem(a.raw_dim().f(), A::default());
                f.assign(a);
                Laid {
                    owned: f,
                    broadcast: None,
                }
            }
            Layout::Stepped => {
                let last = Axis(a.ndim() - 1);
                let mut big_dim = a.raw_dim();
                big_dim[last.index()] *= 2;
                let mut big = Array::from_elem(big_dim, A::default());
                big.slice_axis_inplace(last, Slice::new(0, None, 2));
                big.assign(a);
                Laid {
                    owned: big,
                    broadcast: None,
                }
            }
            Layout::Reversed => {
                let mut r = a.slice_axis(Axis(0), Slice::new(0, None, -1)).to_owned();
                r.invert_axis(Axis(0));
                Laid {
                    owned: r,
                    broadcast: None,
                }
            }
            Layout::Broadcast => {
                let first = a.slice_axis(Axis(0), Slice::new(0, Some(1), 1)).to_owned();
                Laid {
                    owned: first,
                    broadcast: Some(a.raw_dim()),
                }
            }
        }
    }

    /// The argument as the user hands it in.
    pub fn view(&self) -> ArrayView<'_, A, D> {
        match &self.broadcast {
            Some(d) => self
                .owned
                .broadcast(d.clone())
                .expect("broadcast of a size-1 axis"),
            None => self.owned.view(),
        }
    }

    /// A mutable view (not for broadcasts: those are read-only; they come back standard).
    pub fn view_mut(&mut self) -> ArrayViewMut<'_, A, D> {
        if let Some(d) = self.broadcast.take() {
            self.owned = self.owned.broadcast(d).unwrap().to_owned();
        }
        self.owned.view_mut()
    }

    /// The argument as an owned array with its memory layout (broadcasts materialised
    /// standard).
    pub fn owned(&self) -> Array<A, D> {
        match &self.broadcast {
            Some(_) => self.view().to_owned(),
            None => self.owned.clone(),
        }
    }

    /// A standard-layout copy of the same logical content: the reference input.
    pub fn standard(&self) -> Array<A, D> {
        self.view().as_standard_layout().into_owned()
    }
}

/// Runs `f`; a panic becomes a test failure naming `call`.
pub fn guard<T>(call: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        TestCaseError::fail(format!("{call} panicked: {msg}"))
    })
}

/// Compares the result of a call on laid-out arguments (`got`) with the same call on
/// standard-layout copies (`want`): both errors (the same one), or both `Ok` with every
/// array within `tol` (relative to the largest |value|).
pub fn same(
    call: &str,
    got: wgpu_rnn::Result<Vec<ndarray::ArrayD<f64>>>,
    want: wgpu_rnn::Result<Vec<ndarray::ArrayD<f64>>>,
    tol: f64,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (Err(g), Err(w)) => {
            if g != w {
                return Err(TestCaseError::fail(format!(
                    "{call}: error {g:?} where the standard layout gives {w:?}"
                )));
            }
        }
        (Ok(_), Err(w)) => {
            return Err(TestCaseError::fail(format!(
                "{call}: Ok where the standard layout gives {w:?}"
            )))
        }
        (Err(g), Ok(_)) => {
            return Err(TestCaseError::fail(format!(
                "{call}: {g:?} where the standard layout succeeds"
            )))
        }
        (Ok(g), Ok(w)) => {
            if g.len() != w.len() {
                return Err(TestCaseError::fail(format!("{call}: output count differs")));
            }
            for (k, (g, w)) in g.iter().zip(&w).enumerate() {
                if g.shape() != w.shape() {
                    return Err(TestCaseError::fail(format!(
                        "{call}: output {k} has shape {:?}, want {:?}",
                        g.shape(),
                        w.shape()
                    )));
                }
                let e = super::rel_err(g, w);
                if e.is_nan() || e > tol {
                    return Err(TestCaseError::fail(format!(
                        "{call}: output {k} differs by {e:e} (> {tol:e})"
                    )));
                }
            }
        }
    }
    Ok(())
}
