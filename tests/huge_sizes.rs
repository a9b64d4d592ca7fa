//! Sizes that overflow, pass the device's buffer limits, or pass what the host can
//! allocate: each is an `Err` naming the argument, before anything is allocated, in debug
//! and release builds alike (`.ci/run` runs this file in release too). Nothing here may
//! panic or abort the process.

mod common;

use common::gpu::ctx;
use ndarray::{Array2, Array3};
use wgpu_rnn::gpu::{matmul, Layer, Mode, Tensor};
use wgpu_rnn::{cpu, notebook, Cell, Error, Params};

/// An error of size naming `arg`: over a limit, or an allocation the host refused.
fn too_large<T: std::fmt::Debug>(call: &str, r: wgpu_rnn::Result<T>, arg: &str) {
    match r {
        Err(Error::TooLarge { arg: a, .. }) | Err(Error::OutOfMemory { arg: a, .. })
            if a == arg => {}
        other => panic!("{call}: expected a size error naming `{arg}`, got {other:?}"),
    }
}

#[test]
fn host_sizes() {
    // The product overflows usize.
    too_large(
        "Params::zeros",
        Params::<f32>::zeros(Cell::Lstm, usize::MAX / 2, 3),
        "input",
    );
    too_large(
        "Params::init",
        Params::<f64>::init(Cell::Lstm, 3, usize::MAX / 4 + 1, 1),
        "hidden",
    );
    // G·H wraps to 0 in release for H = 2^62: it must not pass for a 0-row w_hh.
    let r = Params::<f32>::new(
        Cell::Lstm,
        Array2::zeros((0, 1)),
        Array2::zeros((0, 1 << 62)),
        ndarray::Array1::zeros(0),
        ndarray::Array1::zeros(0),
    );
    match r {
        Err(Error::Shape { arg: "w_hh", .. }) => {}
        other => {
            panic!("Params::new with H = 2^62: expected a shape error naming w_hh, got {other:?}")
        }
    }
    // Valid arithmetic, far more than any host has (2^54 bytes): refused, not aborted.
    too_large(
        "Params::init",
        Params::<f32>::init(Cell::Lstm, 1 << 40, 1 << 10, 1),
        "input",
    );
    // A broadcast view of 3·2^40 elements: cpu::forward must copy it, and cannot.
    let p = Params::<f32>::init(Cell::Rnn, 3, 2, 1).unwrap();
    let base = Array3::<f32>::zeros((1, 1, 3));
    let x = base.broadcast((1 << 20, 1 << 20, 3)).unwrap();
    too_large("cpu::forward", cpu::forward(&p, x, None, None), "x");
    // The notebook's layout, the same.
    let mut rng = common::NumpyRng::new(1);
    let params = notebook::RnnParameters {
        wax: rng.randn((2, 3)),
        waa: rng.randn((2, 2)),
        wya: rng.randn((2, 2)),
        ba: rng.randn((2, 1)),
        by: rng.randn((2, 1)),
    };
    let xb = ndarray::Array3::<f64>::zeros((3, 1, 1));
    let xb = xb.broadcast((3, 1 << 20, 1 << 20)).unwrap();
    let a0 = Array2::<f64>::zeros((2, 1));
    let a0b = a0.broadcast((2, 1 << 20)).unwrap();
    too_large(
        "notebook::rnn_forward",
        notebook::rnn_forward(xb, a0b, &params),
        "x",
    );
}

#[test]
fn device_sizes() {
    let Some(ctx) = ctx() else { return };
    // Overflow of the shape product: an error, not a wrapped-around small tensor.
    too_large(
        "Tensor::zeros",
        Tensor::zeros(ctx, "big", &[usize::MAX, 2]),
        "big",
    );
    too_large(
        "Tensor::zeros",
        Tensor::zeros(ctx, "big", &[1 << 62, 1 << 62]),
        "big",
    );
    // A zero axis does not make an unrepresentable shape valid (its len() would overflow).
    too_large(
        "Tensor::zeros",
        Tensor::zeros(ctx, "big", &[usize::MAX, 2, 0]),
        "big",
    );
    let empty = Tensor::zeros(ctx, "e", &[1 << 40, 0]).unwrap();
    assert_eq!(empty.len(), 0);
    assert_eq!(empty.to_array().unwrap().shape(), &[1 << 40, 0]);
    // Over the device's buffer limits (≤ 2^31 bytes here).
    too_large(
        "Tensor::zeros",
        Tensor::zeros(ctx, "big", &[1 << 30, 4]),
        "big",
    );
    let base = Array3::<f32>::zeros((1, 1, 1));
    let view = base.broadcast((1 << 20, 1 << 10, 8)).unwrap();
    too_large(
        "Tensor::from_array",
        Tensor::from_array(ctx, "x", &view),
        "x",
    );
    // A layer whose projection of x would pass the limit: T·B·4H·4 bytes = 16 GiB.
    let p = Params::<f32>::init(Cell::Lstm, 1, 1024, 1).unwrap();
    let layer = Layer::new(ctx, &p).unwrap();
    let x = Tensor::zeros(ctx, "x", &[1 << 17, 8, 1]).unwrap();
    too_large(
        "Layer::forward",
        layer.forward(&x, None, None, Mode::Inference),
        "x",
    );
    // A product whose output passes the limit: named after b (its columns).
    let a = Tensor::zeros(ctx, "a", &[1 << 16, 1]).unwrap();
    let b = Tensor::zeros(ctx, "b", &[1, 1 << 16]).unwrap();
    too_large("matmul", matmul(&a, &b), "b");
}
