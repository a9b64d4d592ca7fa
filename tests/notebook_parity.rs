//! Every published number of the course notebook (NOTEBOOK.md, recipes 1-8), reproduced
//! from numpy's legacy generator in f64 to 1e-8.

mod common;

use common::{assert_values, lstm_params, NumpyRng};
use ndarray::{s, Array2, Array3};
use wgpu_rnn::notebook::*;

const TOL: f64 = 1e-8;

fn v(a: ndarray::ArrayView1<f64>) -> Vec<f64> {
    a.to_vec()
}

struct RnnDraws {
    x: Array3<f64>,
    a0: Array2<f64>,
    p: RnnParameters<f64>,
}

/// Recipe 2's draws: x(3,10,4), a0(5,10), Waa, Wax, Wya, ba, by.
fn recipe2(rng: &mut NumpyRng) -> RnnDraws {
    let x = rng.randn((3, 10, 4));
    let a0 = rng.randn((5, 10));
    let waa = rng.randn((5, 5));
    let wax = rng.randn((5, 3));
    let wya = rng.randn((2, 5));
    let ba = rng.randn((5, 1));
    let by = rng.randn((2, 1));
    RnnDraws {
        x,
        a0,
        p: RnnParameters {
            wax,
            waa,
            wya,
            ba,
            by,
        },
    }
}

#[test]
fn generator_matches_numpy() {
    // np.random.seed(1); np.random.randn(3) -> [1.62434536, -0.61175641, -0.52817175]
    let mut rng = NumpyRng::new(1);
    let a = rng.randn(3);
    assert_values(
        "randn",
        a.as_slice().unwrap(),
        &[1.62434536, -0.61175641, -0.52817175],
        1e-8,
    );
}

#[test]
fn recipe1_rnn_cell_forward() {
    let mut rng = NumpyRng::new(1);
    let xt = rng.randn((3, 10));
    let a_prev = rng.randn((5, 10));
    let waa = rng.randn((5, 5));
    let wax = rng.randn((5, 3));
    let wya = rng.randn((2, 5));
    let ba = rng.randn((5, 1));
    let by = rng.randn((2, 1));
    let p = RnnParameters {
        wax,
        waa,
        wya,
        ba,
        by,
    };
    let (a_next, yt, cache) = rnn_cell_forward(xt.view(), a_prev.view(), &p).unwrap();
    assert_values(
        "a_next[4]",
        &v(a_next.row(4)),
        &[
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
        ],
        TOL,
    );
    assert_values(
        "yt[1]",
        &v(yt.row(1)),
        &[
            0.9888161, 0.01682021, 0.21140899, 0.36817467, 0.98988387, 0.88945212, 0.36920224,
            0.9966312, 0.9982559, 0.17746526,
        ],
        TOL,
    );
    assert_eq!(cache.a_next, a_next);
    assert_eq!(cache.xt, xt);
}

#[test]
fn recipe2_rnn_forward() {
    let mut rng = NumpyRng::new(1);
    let d = recipe2(&mut rng);
    let (a, y, caches) = rnn_forward(d.x.view(), d.a0.view(), &d.p).unwrap();
    assert_values(
        "a[4][1]",
        &v(a.slice(s![4, 1, ..])),
        &[-0.99999375, 0.77911235, -0.99861469, -0.99833267],
        TOL,
    );
    assert_values(
        "y[1][3]",
        &v(y.slice(s![1, 3, ..])),
        &[0.79560373, 0.86224861, 0.11118257, 0.81515947],
        TOL,
    );
    assert_values(
        "caches[1][1][3]",
        &v(caches.x.slice(s![1, 3, ..])),
        &[-1.1425182, -0.34934272, -0.20889423, 0.58662319],
        TOL,
    );
    assert_eq!(caches.caches.len(), 4);
}

#[test]
fn recipe3_lstm_cell_forward() {
    let mut rng = NumpyRng::new(1);
    let xt = rng.randn((3, 10));
    let a_prev = rng.randn((5, 10));
    let c_prev = rng.randn((5, 10));
    let p = lstm_params(&mut rng, true);
    let (a_next, c_next, yt, cache) =
        lstm_cell_forward(xt.view(), a_prev.view(), c_prev.view(), &p).unwrap();
    assert_values(
        "a_next[4]",
        &v(a_next.row(4)),
        &[
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
        ],
        TOL,
    );
    assert_values(
        "c_next[2]",
        &v(c_next.row(2)),
        &[
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
        ],
        TOL,
    );
    assert_values(
        "yt[1]",
        &v(yt.row(1)),
        &[
            0.79913913, 0.15986619, 0.22412122, 0.15606108, 0.97057211, 0.31146381, 0.00943007,
            0.12666353, 0.39380172, 0.07828381,
        ],
        TOL,
    );
    assert_values(
        "cache[1][3]",
        &v(cache.c_next.row(3)),
        &[
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
        ],
        TOL,
    );
}

#[test]
fn recipe4_lstm_forward() {
    let mut rng = NumpyRng::new(1);
    let x = rng.randn((3, 10, 7));
    let a0 = rng.randn((5, 10));
    let p = lstm_params(&mut rng, true);
    let (a, y, c, caches) = lstm_forward(x.view(), a0.view(), &p).unwrap();
    assert_values("a[4][3][6]", &[a[[4, 3, 6]]], &[0.17211776753291672], TOL);
    assert_values("y[1][4][3]", &[y[[1, 4, 3]]], &[0.9508734618501101], TOL);
    assert_values("c[1][2][1]", &[c[[1, 2, 1]]], &[-0.8555449167181981], TOL);
    assert_values(
        "caches[1][1][1]",
        &v(caches.x.slice(s![1, 1, ..])),
        &[
            0.82797464,
            0.23009474,
            0.76201118,
            -0.22232814,
            -0.20075807,
            0.18656139,
            0.41005165,
        ],
        TOL,
    );
    assert_eq!(caches.caches.len(), 7);
}

#[test]
fn recipe5_rnn_cell_backward() {
    // The notebook passes recipe 2's `ba` (left over) instead of the `b` it draws.
    let ba = recipe2(&mut NumpyRng::new(1)).p.ba;
    let mut rng = NumpyRng::new(1);
    let xt = rng.randn((3, 10));
    let a_prev = rng.randn((5, 10));
    let wax = rng.randn((5, 3));
    let waa = rng.randn((5, 5));
    let wya = rng.randn((2, 5));
    let _b = rng.randn((5, 1));
    let by = rng.randn((2, 1));
    let p = RnnParameters {
        wax,
        waa,
        wya,
        ba,
        by,
    };
    let (_, _, cache) = rnn_cell_forward(xt.view(), a_prev.view(), &p).unwrap();
    let da_next = rng.randn((5, 10));
    let g = rnn_cell_backward(da_next.view(), &cache).unwrap();
    assert_values("dxt[1][2]", &[g.dxt[[1, 2]]], &[-0.4605641030588796], TOL);
    assert_values(
        "da_prev[2][3]",
        &[g.da_prev[[2, 3]]],
        &[0.08429686538067718],
        TOL,
    );
    assert_values("dWax[3][1]", &[g.dwax[[3, 1]]], &[0.3930818739219304], TOL);
    assert_values("dWaa[1][2]", &[g.dwaa[[1, 2]]], &[-0.2848395578696067], TOL);
    assert_values("dba[4]", &[g.dba[[4, 0]]], &[0.80517166], TOL);
}

#[test]
fn recipe6_rnn_backward() {
    // Recipe 2's draws, but the notebook's rnn_backward test draws Wax before Waa.
    let mut rng = NumpyRng::new(1);
    let x = rng.randn((3, 10, 4));
    let a0 = rng.randn((5, 10));
    let wax = rng.randn((5, 3));
    let waa = rng.randn((5, 5));
    let wya = rng.randn((2, 5));
    let ba = rng.randn((5, 1));
    let by = rng.randn((2, 1));
    let p = RnnParameters {
        wax,
        waa,
        wya,
        ba,
        by,
    };
    let (_, _, caches) = rnn_forward(x.view(), a0.view(), &p).unwrap();
    let da = rng.randn((5, 10, 4));
    let g = rnn_backward(da.view(), &caches).unwrap();
    assert_values(
        "dx[1][2]",
        &v(g.dx.slice(s![1, 2, ..])),
        &[-2.07101689, -0.59255627, 0.02466855, 0.01483317],
        TOL,
    );
    assert_values("da0[2][3]", &[g.da0[[2, 3]]], &[-0.31494237512664996], TOL);
    assert_values("dWax[3][1]", &[g.dwax[[3, 1]]], &[11.264104496527777], TOL);
    assert_values("dWaa[1][2]", &[g.dwaa[[1, 2]]], &[2.3033331265798935], TOL);
    assert_values("dba[4]", &[g.dba[[4, 0]]], &[-0.74747722], TOL);
}

#[test]
fn recipe7_lstm_cell_backward() {
    let mut rng = NumpyRng::new(1);
    let xt = rng.randn((3, 10));
    let a_prev = rng.randn((5, 10));
    let c_prev = rng.randn((5, 10));
    let p = lstm_params(&mut rng, true);
    let (_, _, _, cache) = lstm_cell_forward(xt.view(), a_prev.view(), c_prev.view(), &p).unwrap();
    let da_next = rng.randn((5, 10));
    let dc_next = rng.randn((5, 10));
    let g = lstm_cell_backward(da_next.view(), dc_next.view(), &cache).unwrap();
    assert_values("dxt[1][2]", &[g.dxt[[1, 2]]], &[3.230559115109188], TOL);
    assert_values(
        "da_prev[2][3]",
        &[g.da_prev[[2, 3]]],
        &[-0.06396214197109236],
        TOL,
    );
    assert_values(
        "dc_prev[2][3]",
        &[g.dc_prev[[2, 3]]],
        &[0.7975220387970015],
        TOL,
    );
    assert_values("dWf[3][1]", &[g.w.dwf[[3, 1]]], &[-0.1479548381644968], TOL);
    assert_values("dWi[1][2]", &[g.w.dwi[[1, 2]]], &[1.0574980552259903], TOL);
    assert_values("dWc[3][1]", &[g.w.dwc[[3, 1]]], &[2.3045621636876668], TOL);
    assert_values("dWo[1][2]", &[g.w.dwo[[1, 2]]], &[0.3313115952892109], TOL);
    assert_values("dbf[4]", &[g.w.dbf[[4, 0]]], &[0.18864637], TOL);
    assert_values("dbi[4]", &[g.w.dbi[[4, 0]]], &[-0.40142491], TOL);
    assert_values("dbc[4]", &[g.w.dbc[[4, 0]]], &[0.25587763], TOL);
    assert_values("dbo[4]", &[g.w.dbo[[4, 0]]], &[0.13893342], TOL);
}

#[test]
fn recipe8_lstm_backward_true_bptt() {
    let mut rng = NumpyRng::new(1);
    let x = rng.randn((3, 10, 7));
    let a0 = rng.randn((5, 10));
    let p = lstm_params(&mut rng, false);
    let (_, _, _, caches) = lstm_forward(x.view(), a0.view(), &p).unwrap();
    let da = rng.randn((5, 10, 4));
    let g = lstm_backward(da.view(), &caches).unwrap();
    assert_values(
        "dx[1][2]",
        &v(g.dx.slice(s![1, 2, ..])),
        &[0.00218254, 0.28205375, -0.48292508, -0.43281115],
        TOL,
    );
    assert_values("da0[2][3]", &[g.da0[[2, 3]]], &[0.3127703102572602], TOL);
    assert_values(
        "dWf[3][1]",
        &[g.w.dwf[[3, 1]]],
        &[-0.08098023109383466],
        TOL,
    );
    assert_values("dWi[1][2]", &[g.w.dwi[[1, 2]]], &[0.40512433092981814], TOL);
    assert_values(
        "dWc[3][1]",
        &[g.w.dwc[[3, 1]]],
        &[-0.07937467355121496],
        TOL,
    );
    assert_values("dWo[1][2]", &[g.w.dwo[[1, 2]]], &[0.03894877576298694], TOL);
    assert_values("dbf[4]", &[g.w.dbf[[4, 0]]], &[-0.15745657], TOL);
    assert_values("dbi[4]", &[g.w.dbi[[4, 0]]], &[-0.50848333], TOL);
    assert_values("dbc[4]", &[g.w.dbc[[4, 0]]], &[-0.42510818], TOL);
    assert_values("dbo[4]", &[g.w.dbo[[4, 0]]], &[-0.17958196], TOL);
}
