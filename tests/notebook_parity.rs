//! Every published number of the course notebook (NOTEBOOK.md, recipes 1-8), reproduced
//! from numpy's legacy generator in f64 to 1e-8.

mod common;

use common::recipes::*;
use common::{assert_values, NumpyRng};
use ndarray::{s, Array2, Array3, ArrayView3, Axis};
use wgpu_rnn::notebook::*;

const TOL: f64 = 1e-8;

fn v(a: ndarray::ArrayView1<f64>) -> Vec<f64> {
    a.to_vec()
}

/// Asserts the published `caches[1][1][j]` (the cached input `x[1][j]` at every step)
/// to [`TOL`], and that there are as many step caches as the recipe has steps.
fn assert_caches((x, j): (&Array3<f64>, usize), want: &[f64], (caches, steps): (usize, usize)) {
    let name = format!("caches[1][1][{j}]");
    assert_values(&name, &v(x.slice(s![1, j, ..])), want, TOL);
    assert_eq!(caches, steps, "one cache per step");
}

/// Asserts the published `dx[1][2]` at every step and `da0[2][3]` (`da_prev` for one
/// step) to [`TOL`].
fn assert_dx_da0(dx: ArrayView3<f64>, da0: &Array2<f64>, dx_1_2: &[f64], da0_2_3: f64) {
    assert_values("dx[1][2]", &v(dx.slice(s![1, 2, ..])), dx_1_2, TOL);
    assert_values("da0[2][3]", &[da0[[2, 3]]], &[da0_2_3], TOL);
}

/// Asserts the published RNN gradients (recipes 5 and 6) to [`TOL`]: dx and da0 (see
/// [`assert_dx_da0`]), then `dWax[3][1]`, `dWaa[1][2]` and `dba[4]` of `[dWax, dWaa, dba]`.
fn assert_rnn_grads(
    (dx, da0): (ArrayView3<f64>, &Array2<f64>),
    [dwax, dwaa, dba]: [&Array2<f64>; 3],
    want: &RnnGrads,
) {
    assert_dx_da0(dx, da0, want.dx_1_2, want.da0_2_3);
    assert_values("dWax[3][1]", &[dwax[[3, 1]]], &[want.dwax_3_1], TOL);
    assert_values("dWaa[1][2]", &[dwaa[[1, 2]]], &[want.dwaa_1_2], TOL);
    assert_values("dba[4]", &[dba[[4, 0]]], &[want.dba_4], TOL);
}

/// Asserts the published LSTM gradients (recipes 7 and 8) to [`TOL`]: dx and da0 (see
/// [`assert_dx_da0`]), `dc_prev[2][3]` where published, and the four gates' `dW` and `db`.
fn assert_lstm_grads(
    (dx, da0, dc0): (ArrayView3<f64>, &Array2<f64>, &Array2<f64>),
    w: &LstmWeightGradients<f64>,
    want: &LstmGrads,
) {
    assert_dx_da0(dx, da0, want.dx_1_2, want.da0_2_3);
    if let Some(dc) = want.dc_prev_2_3 {
        assert_values("dc_prev[2][3]", &[dc0[[2, 3]]], &[dc], TOL);
    }
    let dw = [w.dwf[[3, 1]], w.dwi[[1, 2]], w.dwc[[3, 1]], w.dwo[[1, 2]]];
    let db = [w.dbf[[4, 0]], w.dbi[[4, 0]], w.dbc[[4, 0]], w.dbo[[4, 0]]];
    for k in 0..4 {
        assert_values(LSTM_DW_NAMES[k], &[dw[k]], &[want.dw[k]], TOL);
        assert_values(LSTM_DB_NAMES[k], &[db[k]], &[want.db[k]], TOL);
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
    let d = rnn_recipe(1);
    let xt = d.x.index_axis(Axis(2), 0);
    let (a_next, yt, cache) = rnn_cell_forward(xt, d.a0.view(), &d.p).unwrap();
    assert_values("a_next[4]", &v(a_next.row(4)), &R1_A_NEXT_4, TOL);
    assert_values("yt[1]", &v(yt.row(1)), &R1_YT_1, TOL);
    assert_eq!(cache.a_next, a_next);
    assert_eq!(cache.xt, xt);
}

#[test]
fn recipe2_rnn_forward() {
    let d = rnn_recipe(2);
    let (a, y, caches) = rnn_forward(d.x.view(), d.a0.view(), &d.p).unwrap();
    assert_values("a[4][1]", &v(a.slice(s![4, 1, ..])), &R2_A_4_1, TOL);
    assert_values("y[1][3]", &v(y.slice(s![1, 3, ..])), &R2_Y_1_3, TOL);
    assert_caches((&caches.x, 3), &R2_CACHES_1_1_3, (caches.caches.len(), 4));
}

#[test]
fn recipe3_lstm_cell_forward() {
    let d = lstm_recipe(3);
    let (xt, c_prev) = (d.x.index_axis(Axis(2), 0), d.c0.as_ref().unwrap());
    let (a_next, c_next, yt, cache) =
        lstm_cell_forward(xt, d.a0.view(), c_prev.view(), &d.p).unwrap();
    assert_values("a_next[4]", &v(a_next.row(4)), &R3_A_NEXT_4, TOL);
    assert_values("c_next[2]", &v(c_next.row(2)), &R3_C_NEXT_2, TOL);
    assert_values("yt[1]", &v(yt.row(1)), &R3_YT_1, TOL);
    assert_values("cache[1][3]", &v(cache.c_next.row(3)), &R3_CACHE_1_3, TOL);
}

#[test]
fn recipe4_lstm_forward() {
    let d = lstm_recipe(4);
    let (a, y, c, caches) = lstm_forward(d.x.view(), d.a0.view(), &d.p).unwrap();
    assert_values("a[4][3][6]", &[a[[4, 3, 6]]], &[R4_A_4_3_6], TOL);
    assert_values("y[1][4][3]", &[y[[1, 4, 3]]], &[R4_Y_1_4_3], TOL);
    assert_values("c[1][2][1]", &[c[[1, 2, 1]]], &[R4_C_1_2_1], TOL);
    assert_caches((&caches.x, 1), &R4_CACHES_1_1_1, (caches.caches.len(), 7));
}

#[test]
fn recipe5_rnn_cell_backward() {
    // The draws carry recipe 2's `ba`, which the notebook passes instead of its own `b`.
    let d = rnn_recipe(5);
    let xt = d.x.index_axis(Axis(2), 0);
    let (_, _, cache) = rnn_cell_forward(xt, d.a0.view(), &d.p).unwrap();
    let da_next = d.da.as_ref().unwrap().index_axis(Axis(2), 0);
    let g = rnn_cell_backward(da_next, &cache).unwrap();
    let dx = g.dxt.view().insert_axis(Axis(2));
    assert_rnn_grads((dx, &g.da_prev), [&g.dwax, &g.dwaa, &g.dba], &R5);
}

#[test]
fn recipe6_rnn_backward() {
    // Recipe 2's draws, but the notebook's rnn_backward test draws Wax before Waa.
    let d = rnn_recipe(6);
    let (_, _, caches) = rnn_forward(d.x.view(), d.a0.view(), &d.p).unwrap();
    let g = rnn_backward(d.da.as_ref().unwrap().view(), &caches).unwrap();
    assert_rnn_grads((g.dx.view(), &g.da0), [&g.dwax, &g.dwaa, &g.dba], &R6);
}

#[test]
fn recipe7_lstm_cell_backward() {
    let d = lstm_recipe(7);
    let (xt, c_prev) = (d.x.index_axis(Axis(2), 0), d.c0.as_ref().unwrap());
    let (_, _, _, cache) = lstm_cell_forward(xt, d.a0.view(), c_prev.view(), &d.p).unwrap();
    let da_next = d.da.as_ref().unwrap().index_axis(Axis(2), 0);
    let dc_next = d.dc.as_ref().unwrap();
    let g = lstm_cell_backward(da_next, dc_next.view(), &cache).unwrap();
    let dx = g.dxt.view().insert_axis(Axis(2));
    assert_lstm_grads((dx, &g.da_prev, &g.dc_prev), &g.w, &R7);
}

#[test]
fn recipe8_lstm_backward_true_bptt() {
    let d = lstm_recipe(8);
    let (_, _, _, caches) = lstm_forward(d.x.view(), d.a0.view(), &d.p).unwrap();
    let g = lstm_backward(d.da.as_ref().unwrap().view(), &caches).unwrap();
    // Recipe 8 publishes no dc0.
    assert_lstm_grads((g.dx.view(), &g.da0, &g.dc0), &g.w, &R8);
}
