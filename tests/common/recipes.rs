//! The course notebook's recipes 1-8 (NOTEBOOK.md): its parameters (drawn, and packed
//! in the library's layout), each recipe's draws from numpy's legacy generator, and the
//! published numbers, shared by the f64 parity tests and the GPU runs of the same
//! recipes. Names give the notebook's indexing (`R1_A_NEXT_4` is
//! recipe 1's `a_next[4]`).

use ndarray::{Array2, Array3};
use wgpu_rnn::notebook::{LstmParameters, RnnParameters};
use wgpu_rnn::Params;

use super::NumpyRng;

/// A recipe's draws, in the notebook's layout (n_x = 3, m = 10, n_a = 5).
pub struct Draws<P> {
    /// The input `(n_x, m, T)`; the cell recipes' `xt` is its one step.
    pub x: Array3<f64>,
    /// `a0` (`a_prev` in the cell recipes).
    pub a0: Array2<f64>,
    /// `c_prev` of the LSTM cell recipes 3 and 7.
    pub c0: Option<Array2<f64>>,
    /// The upstream gradient `(n_a, m, T)` of the backward recipes (`da_next`, one step,
    /// in the cell recipes).
    pub da: Option<Array3<f64>>,
    /// `dc_next` of recipe 7.
    pub dc: Option<Array2<f64>>,
    /// The parameters.
    pub p: P,
}

/// The draws of RNN recipe `n` (1, 2, 5 or 6), from `np.random.seed(1)`: x, a0, the
/// parameters (Wax before Waa in the backward recipes), then da (backward recipes).
pub fn rnn_recipe(n: u32) -> Draws<RnnParameters<f64>> {
    let steps = match n {
        1 | 5 => 1,
        2 | 6 => 4,
        _ => panic!("recipe {n} is not an RNN recipe"),
    };
    let backward = n >= 5;
    let mut rng = NumpyRng::new(1);
    let x = rng.randn((3, 10, steps));
    let a0 = rng.randn((5, 10));
    let mut p = rnn_params(backward, |shape| rng.randn(shape));
    if n == 5 {
        // The notebook passes recipe 2's `ba` (left over) instead of the `b` it draws.
        p.ba = rnn_recipe(2).p.ba;
    }
    Draws {
        x,
        a0,
        c0: None,
        da: backward.then(|| rng.randn((5, 10, steps))),
        dc: None,
        p,
    }
}

/// The draws of LSTM recipe `n` (3, 4, 7 or 8), from `np.random.seed(1)`: x, a0, c_prev
/// (cell recipes), the parameters (recipe 8 draws no Wy, by: zeros), then da (recipe 8:
/// 4 of the 7 steps) and dc (recipe 7).
pub fn lstm_recipe(n: u32) -> Draws<LstmParameters<f64>> {
    let steps = match n {
        3 | 7 => 1,
        4 | 8 => 7,
        _ => panic!("recipe {n} is not an LSTM recipe"),
    };
    let mut rng = NumpyRng::new(1);
    let x = rng.randn((3, 10, steps));
    let a0 = rng.randn((5, 10));
    let c0 = (steps == 1).then(|| rng.randn((5, 10)));
    let p = lstm_params(n != 8, |shape| rng.randn(shape));
    Draws {
        x,
        a0,
        c0,
        da: match n {
            7 => Some(rng.randn((5, 10, 1))),
            8 => Some(rng.randn((5, 10, 4))),
            _ => None,
        },
        dc: (n == 7).then(|| rng.randn((5, 10))),
        p,
    }
}

/// The notebook's RNN parameters (n_a = 5, n_x = 3, n_y = 2), each array made by `make`
/// in the order Waa, Wax, Wya, ba, by (recipes 1 to 4), or Wax before Waa where
/// `wax_first` (the backward recipes 5 and 6).
pub fn rnn_params(
    wax_first: bool,
    mut make: impl FnMut((usize, usize)) -> Array2<f64>,
) -> RnnParameters<f64> {
    let (wax, waa) = match wax_first {
        true => (make((5, 3)), make((5, 5))),
        false => {
            let waa = make((5, 5));
            (make((5, 3)), waa)
        }
    };
    RnnParameters {
        wax,
        waa,
        wya: make((2, 5)),
        ba: make((5, 1)),
        by: make((2, 1)),
    }
}

/// The notebook's LSTM parameters (n_a = 5, n_x = 3, n_y = 2), each array made by `make`
/// in the order Wf, bf, Wi, bi, Wo, bo, Wc, bc, then Wy, by when `head` (zeros
/// otherwise).
pub fn lstm_params(
    head: bool,
    mut make: impl FnMut((usize, usize)) -> Array2<f64>,
) -> LstmParameters<f64> {
    let mut make = |shape, made: bool| match made {
        true => make(shape),
        false => Array2::zeros(shape),
    };
    LstmParameters {
        wf: make((5, 8), true),
        bf: make((5, 1), true),
        wi: make((5, 8), true),
        bi: make((5, 1), true),
        wo: make((5, 8), true),
        bo: make((5, 1), true),
        wc: make((5, 8), true),
        bc: make((5, 1), true),
        wy: make((2, 5), head),
        by: make((2, 1), head),
    }
}

/// The notebook's RNN weights in the library's packed layout.
pub fn rnn_packed(p: &RnnParameters<f64>) -> Params<f64> {
    Params::rnn_from_notebook(p.wax.view(), p.waa.view(), p.ba.view()).unwrap()
}

/// The notebook's LSTM weights in the library's packed layout.
pub fn lstm_packed(p: &LstmParameters<f64>) -> Params<f64> {
    let gates = [&p.wf, &p.bf, &p.wi, &p.bi, &p.wc, &p.bc, &p.wo, &p.bo];
    let [wf, bf, wi, bi, wc, bc, wo, bo] = gates.map(|a| a.view());
    Params::lstm_from_notebook(wf, bf, wi, bi, wc, bc, wo, bo).unwrap()
}

/// The names of [`LstmGrads::dw`].
pub const LSTM_DW_NAMES: [&str; 4] = ["dWf[3][1]", "dWi[1][2]", "dWc[3][1]", "dWo[1][2]"];
/// The names of [`LstmGrads::db`].
pub const LSTM_DB_NAMES: [&str; 4] = ["dbf[4]", "dbi[4]", "dbc[4]", "dbo[4]"];

/// Recipe 1 (`rnn_cell_forward`): `a_next[4]`.
pub const R1_A_NEXT_4: [f64; 10] = [
    0.59584544,
    0.18141802,
    0.61311866,
    0.99808218,
    0.85016201,
    0.99980978,
    -0.18887155,
    0.99815551,
    0.6531151,
    0.82872037,
];
/// Recipe 1: `yt[1]`.
pub const R1_YT_1: [f64; 10] = [
    0.9888161, 0.01682021, 0.21140899, 0.36817467, 0.98988387, 0.88945212, 0.36920224, 0.9966312,
    0.9982559, 0.17746526,
];

/// Recipe 2 (`rnn_forward`): `a[4][1]`.
pub const R2_A_4_1: [f64; 4] = [-0.99999375, 0.77911235, -0.99861469, -0.99833267];
/// Recipe 2: `y[1][3]`.
pub const R2_Y_1_3: [f64; 4] = [0.79560373, 0.86224861, 0.11118257, 0.81515947];
/// Recipe 2: `caches[1][1][3]`.
pub const R2_CACHES_1_1_3: [f64; 4] = [-1.1425182, -0.34934272, -0.20889423, 0.58662319];

/// Recipe 3 (`lstm_cell_forward`): `a_next[4]`.
pub const R3_A_NEXT_4: [f64; 10] = [
    -0.66408471,
    0.0036921,
    0.02088357,
    0.22834167,
    -0.85575339,
    0.00138482,
    0.76566531,
    0.34631421,
    -0.00215674,
    0.43827275,
];
/// Recipe 3: `c_next[2]`.
pub const R3_C_NEXT_2: [f64; 10] = [
    0.63267805,
    1.00570849,
    0.35504474,
    0.20690913,
    -1.64566718,
    0.11832942,
    0.76449811,
    -0.0981561,
    -0.74348425,
    -0.26810932,
];
/// Recipe 3: `yt[1]`.
pub const R3_YT_1: [f64; 10] = [
    0.79913913, 0.15986619, 0.22412122, 0.15606108, 0.97057211, 0.31146381, 0.00943007, 0.12666353,
    0.39380172, 0.07828381,
];
/// Recipe 3: `cache[1][3]` (the cached `c_next`).
pub const R3_CACHE_1_3: [f64; 10] = [
    -0.16263996,
    1.03729328,
    0.72938082,
    -0.54101719,
    0.02752074,
    -0.30821874,
    0.07651101,
    -1.03752894,
    1.41219977,
    -0.37647422,
];

/// Recipe 4 (`lstm_forward`): `a[4][3][6]`.
pub const R4_A_4_3_6: f64 = 0.17211776753291672;
/// Recipe 4: `y[1][4][3]`.
pub const R4_Y_1_4_3: f64 = 0.9508734618501101;
/// Recipe 4: `c[1][2][1]`.
pub const R4_C_1_2_1: f64 = -0.8555449167181981;
/// Recipe 4: `caches[1][1][1]`.
pub const R4_CACHES_1_1_1: [f64; 7] = [
    0.82797464,
    0.23009474,
    0.76201118,
    -0.22232814,
    -0.20075807,
    0.18656139,
    0.41005165,
];

/// The gradients an RNN backward recipe publishes (`dxt` is recipe 5's `dx[1][2]`,
/// one step).
pub struct RnnGrads {
    /// `dx[1][2]`, every step.
    pub dx_1_2: &'static [f64],
    /// `da0[2][3]` (`da_prev` for one step).
    pub da0_2_3: f64,
    /// `dWax[3][1]`.
    pub dwax_3_1: f64,
    /// `dWaa[1][2]`.
    pub dwaa_1_2: f64,
    /// `dba[4]`.
    pub dba_4: f64,
}

/// Recipe 5 (`rnn_cell_backward`).
pub const R5: RnnGrads = RnnGrads {
    dx_1_2: &[-0.4605641030588796],
    da0_2_3: 0.08429686538067718,
    dwax_3_1: 0.3930818739219304,
    dwaa_1_2: -0.2848395578696067,
    dba_4: 0.80517166,
};

/// Recipe 6 (`rnn_backward`).
pub const R6: RnnGrads = RnnGrads {
    dx_1_2: &[-2.07101689, -0.59255627, 0.02466855, 0.01483317],
    da0_2_3: -0.31494237512664996,
    dwax_3_1: 11.264104496527777,
    dwaa_1_2: 2.3033331265798935,
    dba_4: -0.74747722,
};

/// The gradients an LSTM backward recipe publishes.
pub struct LstmGrads {
    /// `dx[1][2]`, every step.
    pub dx_1_2: &'static [f64],
    /// `da0[2][3]` (`da_prev` for one step).
    pub da0_2_3: f64,
    /// `dc_prev[2][3]` (one step only).
    pub dc_prev_2_3: Option<f64>,
    /// `dWf[3][1]`, `dWi[1][2]`, `dWc[3][1]`, `dWo[1][2]`.
    pub dw: [f64; 4],
    /// `dbf[4]`, `dbi[4]`, `dbc[4]`, `dbo[4]`.
    pub db: [f64; 4],
}

/// Recipe 7 (`lstm_cell_backward`).
pub const R7: LstmGrads = LstmGrads {
    dx_1_2: &[3.230559115109188],
    da0_2_3: -0.06396214197109236,
    dc_prev_2_3: Some(0.7975220387970015),
    dw: [
        -0.1479548381644968,
        1.0574980552259903,
        2.3045621636876668,
        0.3313115952892109,
    ],
    db: [0.18864637, -0.40142491, 0.25587763, 0.13893342],
};

/// Recipe 8 (`lstm_backward`, true BPTT).
pub const R8: LstmGrads = LstmGrads {
    dx_1_2: &[0.00218254, 0.28205375, -0.48292508, -0.43281115],
    da0_2_3: 0.3127703102572602,
    dc_prev_2_3: None,
    dw: [
        -0.08098023109383466,
        0.40512433092981814,
        -0.07937467355121496,
        0.03894877576298694,
    ],
    db: [-0.15745657, -0.50848333, -0.42510818, -0.17958196],
};
