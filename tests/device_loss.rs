//! After the device is lost (`Device::destroy` simulates it), every public GPU entry point
//! returns `Err(Error::DeviceLost)`: none panics, none hangs, none returns `Ok`. Each
//! test makes its own context (a destroyed device is no use to anyone after).

mod common;

use common::gpu::{fresh, within};
use ndarray::{Array2, Array3};
use wgpu_rnn::gpu::{forward_host, matmul, Context, GpuHead, Layer, Mode, Tensor};
use wgpu_rnn::{Cell, Error, Head, Params};

fn lost<T: std::fmt::Debug>(call: &str, r: wgpu_rnn::Result<T>) {
    match r {
        Err(Error::DeviceLost(_)) => {}
        other => panic!("{call} after device loss: expected Err(DeviceLost), got {other:?}"),
    }
}

/// Runs `f` on a context of its own with an LSTM layer of `input` inputs and `hidden`
/// units (and its parameters); a hang or panic past 60 s fails the test (nothing runs
/// where there is no adapter, outside CI).
fn with_lstm_layer(
    what: &str,
    (input, hidden): (usize, usize),
    f: impl FnOnce(Context, Params<f32>, Layer) + Send + 'static,
) {
    let Some(ctx) = fresh() else { return };
    within(60, what, move || {
        let p = Params::<f32>::init(Cell::Lstm, input, hidden, 1).unwrap();
        let layer = Layer::new(&ctx, &p).unwrap();
        f(ctx, p, layer)
    });
}

#[test]
fn every_entry_point_fails_after_device_loss() {
    with_lstm_layer("device loss", (3, 4), |ctx, p, layer| {
        let head = Head::new(Array2::<f32>::ones((2, 4)), ndarray::Array1::zeros(2)).unwrap();
        let gpu_head = GpuHead::new(&ctx, &head).unwrap();
        let x_host = Array3::<f32>::ones((2, 2, 3));
        let x = Tensor::from_array(&ctx, "x", &x_host).unwrap();
        let dh = Tensor::from_array(&ctx, "dh", &Array3::<f32>::ones((2, 2, 4))).unwrap();
        let out = layer.forward(&x, None, None, Mode::Training).unwrap();
        let grads = layer
            .backward(out.trace.as_ref().unwrap(), &dh, None)
            .unwrap();
        let mut acc = layer.zero_grads().unwrap();
        let bmat = Tensor::zeros(&ctx, "b", &[4, 2]).unwrap();
        let empty = Tensor::zeros(&ctx, "e", &[0, 3]).unwrap();
        ctx.set_profiling(true);
        // Everything done and read: the queue is empty when the device goes.
        assert!(out.h.to_array().is_ok());
        ctx.wait().unwrap();
        assert!(!ctx.is_lost());

        ctx.device().destroy();

        assert!(ctx.is_lost());
        lost("Tensor::from_array", Tensor::from_array(&ctx, "x", &x_host));
        lost("Tensor::zeros", Tensor::zeros(&ctx, "z", &[2, 3]));
        lost("Tensor::to_array", out.h.to_array());
        lost("Tensor::to_array (empty)", empty.to_array());
        lost(
            "Tensor::to_array_async",
            pollster::block_on(out.h_last.to_array_async()),
        );
        lost("Layer::new", Layer::new(&ctx, &p));
        lost("Layer::set_params", layer.set_params(&p));
        lost(
            "Layer::forward",
            layer.forward(&x, None, None, Mode::Inference),
        );
        lost(
            "Layer::backward",
            layer.backward(out.trace.as_ref().unwrap(), &dh, None),
        );
        lost(
            "Layer::backward_into",
            layer.backward_into(out.trace.as_ref().unwrap(), &dh, None, &mut acc, true),
        );
        lost("Layer::zero_grads", layer.zero_grads());
        lost("ParamGrads::to_host", grads.params.to_host());
        lost("Grads::to_cpu", grads.to_cpu());
        lost(
            "forward_host",
            forward_host(&layer, x_host.view(), None, None),
        );
        lost("GpuHead::new", GpuHead::new(&ctx, &head));
        lost("GpuHead::forward", gpu_head.forward(&out.h));
        lost("matmul", matmul(&out.h_last, &bmat));
        lost("Context::warm_up", ctx.warm_up());
        lost("Context::wait", ctx.wait());
        lost("Context::take_gpu_time_ms", ctx.take_gpu_time_ms());
        // Dropping everything after the loss is fine too.
        drop((layer, gpu_head, x, dh, out, grads, acc));
    });
}

/// The device goes while a long sequence is still running: nothing panics or hangs, and
/// reading its result, or any later call, is an error.
#[test]
fn loss_with_work_in_flight() {
    with_lstm_layer("loss in flight", (32, 64), |ctx, _, layer| {
        let x = Tensor::from_array(&ctx, "x", &Array3::<f32>::ones((200, 8, 32))).unwrap();
        let out = layer.forward(&x, None, None, Mode::Training).unwrap();
        ctx.device().destroy();
        let r = out.h.to_array();
        assert!(
            r.is_err(),
            "a result of a lost device: {:?}",
            r.map(|a| a.len())
        );
        // By now the queue has drained: every call knows.
        lost(
            "Layer::forward",
            layer.forward(&x, None, None, Mode::Inference),
        );
        lost("Tensor::zeros", Tensor::zeros(&ctx, "z", &[4]));
    });
}
