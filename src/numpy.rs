//! numpy's legacy generator (`np.random.seed`, `np.random.randn`,
//! `np.random.random_sample`, `np.random.choice(..., p=...)`), bit-compatible with
//! `numpy.random.RandomState`, so that the course's seeded draws
//! ([`crate::notebook::rnn_utils::initialize_parameters`],
//! [`crate::notebook::rnn_utils::sample`]) come out as they do in the notebook.

use ndarray::{Array, Dimension, ShapeBuilder};

use crate::error::{Error, Result};
use crate::host;

/// Words in the MT19937 state.
const N: usize = 624;

/// numpy's legacy `RandomState`: MT19937 seeded as `np.random.seed(int)`
/// (`init_genrand`), doubles of 53 random bits, and normals by the polar method with the
/// second value of each pair cached, as `np.random.randn` draws them.
///
/// ```
/// use wgpu_rnn::numpy::RandomState;
/// let mut rng = RandomState::new(1);
/// let v = [rng.randn(), rng.randn(), rng.randn()];
/// // np.random.seed(1); np.random.randn(3)
/// let want = [1.6243453636632417, -0.6117564136500754, -0.5281717522634557];
/// for (g, w) in v.iter().zip(want) {
///     assert!((g - w).abs() < 1e-15);
/// }
/// ```
#[derive(Debug, Clone)]
pub struct RandomState {
    mt: [u32; N],
    idx: usize,
    gauss: Option<f64>,
}

impl RandomState {
    /// A generator as after `np.random.seed(seed)` (numpy accepts `0 ≤ seed < 2^32`).
    pub fn new(seed: u32) -> Self {
        let mut rng = RandomState {
            mt: [0; N],
            idx: N,
            gauss: None,
        };
        rng.seed(seed);
        rng
    }

    /// `np.random.seed(seed)`: re-seeds the generator and drops any cached normal.
    pub fn seed(&mut self, seed: u32) {
        self.mt[0] = seed;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.idx = N;
        self.gauss = None;
    }

    /// The next 32 random bits (MT19937 `genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.idx >= N {
            for i in 0..N {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % N] & 0x7fff_ffff);
                let mut v = self.mt[(i + 397) % N] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[i] = v;
            }
            self.idx = 0;
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `np.random.random_sample()`: a double in `[0, 1)` from 53 random bits (two words).
    pub fn random_sample(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// One standard normal as `np.random.randn()` draws it (the legacy polar method: a
    /// pair from each accepted point, the second returned by the next call).
    pub fn randn(&mut self) -> f64 {
        if let Some(v) = self.gauss.take() {
            return v;
        }
        loop {
            let x1 = 2.0 * self.random_sample() - 1.0;
            let x2 = 2.0 * self.random_sample() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// `np.random.randn(*shape)`, filled in C (row-major) order; a shape too large for
    /// the host is [`Error::TooLarge`] naming `arg`.
    pub fn randn_array<D: Dimension, Sh: ShapeBuilder<Dim = D>>(
        &mut self,
        arg: &'static str,
        shape: Sh,
    ) -> Result<Array<f64, D>> {
        let mut a = host::zeros(arg, shape)?;
        // `iter_mut` walks the logical (C) order whatever the memory layout: numpy's order.
        a.iter_mut().for_each(|v| *v = self.randn());
        Ok(a)
    }

    /// `np.random.choice(len(p), p=p)`: one `random_sample()` `u`, then the first index
    /// whose cumulative probability (`cumsum(p)`, divided by its last value) exceeds `u`.
    ///
    /// `atol` is numpy's tolerance on `|Σ p − 1|`: `sqrt(eps)` of `p`'s dtype before
    /// numpy converts it to double (`sqrt(f64::EPSILON)` for `float64` probabilities,
    /// `sqrt(f32::EPSILON)` for `float32` ones). An empty `p`, a negative or non-finite
    /// entry, or a sum off by more than `atol` is [`Error::Invalid`] naming `p`, as numpy
    /// raises `ValueError`; the generator is then left untouched.
    pub fn choice(&mut self, p: &[f64], atol: f64) -> Result<usize> {
        let invalid = |msg: String| Error::Invalid { arg: "p", msg };
        if p.is_empty() {
            return Err(invalid("a must be non-empty".into()));
        }
        if let Some((i, v)) = p.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(invalid(format!("probabilities contain {v} (at {i})")));
        }
        if let Some((i, v)) = p.iter().enumerate().find(|(_, &v)| v < 0.0) {
            return Err(invalid(format!(
                "probabilities are not non-negative ({v} at {i})"
            )));
        }
        let total: f64 = p.iter().sum();
        if (total - 1.0).abs() > atol {
            return Err(invalid(format!(
                "probabilities do not sum to 1 (sum {total}, tolerance {atol:e})"
            )));
        }
        let mut cdf = Vec::new();
        cdf.try_reserve_exact(p.len())
            .map_err(|_| Error::OutOfMemory {
                arg: "p",
                bytes: host::bytes_u128(&[p.len()], std::mem::size_of::<f64>()),
            })?;
        let mut acc = 0.0;
        for &v in p {
            acc += v;
            cdf.push(acc);
        }
        let last = acc;
        cdf.iter_mut().for_each(|c| *c /= last);
        let u = self.random_sample();
        // `searchsorted(u, side='right')`: the number of entries ≤ u.
        let idx = cdf.partition_point(|&c| c <= u);
        // u < 1 = cdf[last] always, so idx is in range; stay safe all the same.
        Ok(idx.min(p.len() - 1))
    }
}
