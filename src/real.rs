//! The floating-point types the CPU path is generic over (f32 and f64).

use std::fmt::{Debug, Display};

use ndarray::{ArrayView2, ArrayViewMut2, LinalgScalar, ScalarOperand};

/// A real number type of the CPU path: `f32` or `f64`.
///
/// The activations here cannot overflow: [`Real::sigmoid`] and [`Real::tanh`] are stable
/// for any finite input.
pub trait Real:
    LinalgScalar
    + ScalarOperand
    + PartialOrd
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::ops::Neg<Output = Self>
{
    /// Converts from `f64` (rounding for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64`.
    fn to_f64(self) -> f64;
    /// `e^self`.
    fn exp(self) -> Self;
    /// The natural logarithm.
    fn ln(self) -> Self;
    /// Hyperbolic tangent (for `f32` through one `exp`: 4× faster than `tanhf`, within
    /// 1e-7 absolute; `f64`, the oracle, uses the exact library function).
    fn tanh(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Whether the value is finite.
    fn is_finite(self) -> bool;
    /// The larger of two values.
    fn max(self, other: Self) -> Self {
        if other > self {
            other
        } else {
            self
        }
    }
    /// The right operand of matrix products, prepared once for many (packed into SIMD
    /// panels for `f32`; the matrix itself for `f64`, the oracle). Internal to the CPU
    /// path's engines.
    #[doc(hidden)]
    type Prepared: Send + Sync;
    /// Prepares `b [K, N]` (any strides) for [`Real::gemm_prepared`].
    #[doc(hidden)]
    fn prepare(b: ArrayView2<Self>) -> Self::Prepared;
    /// Prepares the `B` made of `parts` stacked along `K` (each `[K_i, N]`, any
    /// strides).
    #[doc(hidden)]
    fn prepare_stacked(parts: &[ArrayView2<Self>]) -> Self::Prepared;
    /// `C = A·B + bias` (`bias [N]` added to every row) for a prepared `B`.
    #[doc(hidden)]
    fn gemm_prepared_bias(
        a: ArrayView2<Self>,
        b: &Self::Prepared,
        bias: &[Self],
        c: ArrayViewMut2<Self>,
    );
    /// `C = A·B` (`acc`: `C += A·B`) for `A [M, K]`, the prepared `B [K, N]` and
    /// `C [M, N]`, any strides.
    #[doc(hidden)]
    fn gemm_prepared(a: ArrayView2<Self>, b: &Self::Prepared, acc: bool, c: ArrayViewMut2<Self>);
    /// `C = A·B + bias` (`bias [N]` added to every row) for a `B` prepared for this one
    /// product.
    #[doc(hidden)]
    fn gemm_bias(a: ArrayView2<Self>, b: ArrayView2<Self>, bias: &[Self], c: ArrayViewMut2<Self>);
    /// [`Real::gemm_prepared`] with `B` prepared for this one product.
    #[doc(hidden)]
    fn gemm(a: ArrayView2<Self>, b: ArrayView2<Self>, acc: bool, c: ArrayViewMut2<Self>) {
        Self::gemm_prepared(a, &Self::prepare(b), acc, c)
    }
    /// Logistic sigmoid `1 / (1 + e^-x)`, computed without overflow on either side (for
    /// `f32` branch-free from a polynomial `exp`, so that loops over gates vectorize).
    fn sigmoid(self) -> Self {
        let one = Self::one();
        if self >= Self::zero() {
            one / (one + (-self).exp())
        } else {
            let e = self.exp();
            e / (one + e)
        }
    }
}

/// `e^x` for `x ≤ 0` without a branch or a library call (Cephes' `expf`: `x = n·ln 2 + r`,
/// a degree-5 polynomial for `e^r` on `|r| ≤ ln 2 / 2`, `2^n` from the exponent bits),
/// within 2 ulp; below −87.3 it returns `e^−87.3` (1e-38) rather than a subnormal.
#[inline(always)]
fn exp_neg_f32(x: f32) -> f32 {
    // A select, not `max`: a NaN stays a NaN.
    let x = if x < -87.3 { -87.3 } else { x };
    // n = round(x / ln 2) by the 1.5·2^23 trick (no call to `round`); its integer value
    // is in t's low mantissa bits (no float-to-int conversion).
    let t = x * std::f32::consts::LOG2_E + 12_582_912.0;
    let n = t - 12_582_912.0;
    let ni = t.to_bits().wrapping_sub(0x4B40_0000) as i32;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits((ni.wrapping_add(127) as u32) << 23)
}

/// The `f32` sigmoid: `1 / (1 + e^{−|x|})`, mirrored for negative `x`, branch-free.
#[inline(always)]
fn sigmoid_f32(x: f32) -> f32 {
    let e = exp_neg_f32(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 {
        s
    } else {
        e * s
    }
}

macro_rules! impl_real {
    ($t:ty, $tanh:expr, $prepared:ty, $prepare:expr, $stacked:expr, $gemm:expr, $gemm_bias:expr, $prepared_bias:expr $(, $sigmoid:expr)?) => {
        impl Real for $t {
            type Prepared = $prepared;
            fn prepare(b: ArrayView2<Self>) -> Self::Prepared {
                $prepare(b)
            }
            fn prepare_stacked(parts: &[ArrayView2<Self>]) -> Self::Prepared {
                $stacked(parts)
            }
            fn gemm_prepared_bias(
                a: ArrayView2<Self>,
                b: &Self::Prepared,
                bias: &[Self],
                c: ArrayViewMut2<Self>,
            ) {
                $prepared_bias(a, b, bias, c)
            }
            fn gemm_prepared(
                a: ArrayView2<Self>,
                b: &Self::Prepared,
                acc: bool,
                c: ArrayViewMut2<Self>,
            ) {
                $gemm(a, b, acc, c)
            }
            fn gemm_bias(
                a: ArrayView2<Self>,
                b: ArrayView2<Self>,
                bias: &[Self],
                c: ArrayViewMut2<Self>,
            ) {
                $gemm_bias(a, b, bias, c)
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            $(
                #[inline(always)]
                fn sigmoid(self) -> Self {
                    $sigmoid(self)
                }
            )?
        }
    };
}
/// `tanh` for `f32` from one `exp` of `-2|x|` (never overflows), with a series near zero
/// where `1 - e^{-2|x|}` would cancel; both computed and one selected (no branch, so that
/// loops over gates vectorize).
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let series = x - x * x * x * (1.0 / 3.0);
    let e = exp_neg_f32(-2.0 * a);
    let t = ((1.0 - e) / (1.0 + e)).copysign(x);
    if a < 0.004 {
        series
    } else {
        t
    }
}

impl_real!(
    f32,
    tanh_f32,
    crate::cpu::gemm::Packed,
    crate::cpu::gemm::Packed::plain,
    crate::cpu::gemm::Packed::stacked,
    |a, b, acc, c| crate::cpu::gemm::gemm(a, b, c, acc),
    |a, b: ArrayView2<f32>, bias: &[f32], c| {
        let p = crate::cpu::gemm::Packed::plain(b);
        crate::cpu::gemm::gemm_bias(a, &p, Some(bias), c, false)
    },
    |a, b: &crate::cpu::gemm::Packed, bias: &[f32], c| {
        crate::cpu::gemm::gemm_bias(a, b, Some(bias), c, false)
    },
    sigmoid_f32
);
impl_real!(
    f64,
    f64::tanh,
    ndarray::Array2<f64>,
    |b: ArrayView2<f64>| b.to_owned(),
    |parts: &[ArrayView2<f64>]| ndarray::concatenate(ndarray::Axis(0), parts)
        .expect("stacked widths"),
    |a: ArrayView2<f64>, b: &ndarray::Array2<f64>, acc: bool, mut c: ArrayViewMut2<f64>| {
        let beta = if acc { 1.0 } else { 0.0 };
        ndarray::linalg::general_mat_mul(1.0, &a, b, beta, &mut c)
    },
    |a: ArrayView2<f64>, b: ArrayView2<f64>, bias: &[f64], mut c: ArrayViewMut2<f64>| {
        for mut row in c.rows_mut() {
            row.assign(&ndarray::ArrayView1::from(bias));
        }
        ndarray::linalg::general_mat_mul(1.0, &a, &b, 1.0, &mut c)
    },
    |a: ArrayView2<f64>, b: &ndarray::Array2<f64>, bias: &[f64], mut c: ArrayViewMut2<f64>| {
        for mut row in c.rows_mut() {
            row.assign(&ndarray::ArrayView1::from(bias));
        }
        ndarray::linalg::general_mat_mul(1.0, &a, b, 1.0, &mut c)
    }
);

#[cfg(test)]
mod tests {
    use super::Real;

    /// The branch-free f32 activations against f64's exact ones over a dense grid and at
    /// the extremes: the sigmoid within 4 ulp relative down to 1e-37, tanh within 2e-7.
    #[test]
    fn f32_activations_are_accurate() {
        let (mut es, mut et, mut at) = (0f64, 0f64, 0f64);
        let mut x = -120.0f64;
        while x <= 120.0 {
            let s = (x as f32).sigmoid() as f64;
            let t = Real::tanh(x as f32) as f64;
            let xf = x as f32 as f64;
            let ws = 1.0 / (1.0 + (-xf).exp());
            if ws > 1e-37 {
                if (s - ws).abs() / ws > es {
                    es = (s - ws).abs() / ws;
                    at = xf;
                }
            } else {
                assert!(s < 1.1e-37, "sigmoid({xf}) = {s}");
            }
            et = et.max((t - xf.tanh()).abs());
            x += 0.000_37;
        }
        assert!(es < 5e-7, "sigmoid: {es:e} at {at}");
        assert!(et < 2e-7, "tanh: {et:e}");
        assert!(f32::MAX.sigmoid() == 1.0 && f32::MIN.sigmoid() < 1.1e-37);
        assert!(Real::tanh(f32::MAX) == 1.0 && Real::tanh(f32::MIN) == -1.0);
        assert!(f32::NAN.sigmoid().is_nan() && Real::tanh(f32::NAN).is_nan());
    }
}
