//! Trains a GPU LSTM end to end: predict the next value of sine waves of random phase
//! and frequency.
//!
//! The LSTM runs forward and backward on the GPU; a linear readout, the mean squared
//! error and plain SGD run on the host; the updated weights go back with
//! `Layer::set_params`. The loss should fall by well over an order of magnitude.
//!
//! `cargo run --release --example train_sine`

use ndarray::{s, Array1, Array2, Array3, Axis};
use wgpu_rnn::gpu::{Context, Layer, Mode, Tensor};
use wgpu_rnn::{Cell, Params, SplitMix64};

fn main() -> wgpu_rnn::Result<()> {
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.describe());
    let (t, b, h) = (40, 32, 24);
    let lr = 0.5f32;
    let mut p = Params::<f32>::init(Cell::Lstm, 1, h, 7)?;
    let layer = Layer::new(&ctx, &p)?;
    let mut rng = SplitMix64(11);
    // Readout y_t = h_t · w + c.
    let mut w: Array1<f32> =
        Array1::from_shape_simple_fn(h, || (rng.next_f64() as f32 - 0.5) * 0.2);
    let mut c = 0f32;

    for epoch in 0..=300 {
        // A batch of sine waves with random phase and frequency; target = next value.
        let phase: Vec<f32> = (0..b)
            .map(|_| rng.next_f64() as f32 * std::f32::consts::TAU)
            .collect();
        let freq: Vec<f32> = (0..b)
            .map(|_| 0.15 + rng.next_f64() as f32 * 0.25)
            .collect();
        let wave = |k: usize, j: usize| (phase[j] + freq[j] * k as f32).sin();
        let x = Array3::from_shape_fn((t, b, 1), |(k, j, _)| wave(k, j));
        let target = Array2::from_shape_fn((t, b), |(k, j)| wave(k + 1, j));

        let xt = Tensor::from_array(&ctx, "x", &x)?;
        let out = layer.forward(&xt, None, None, Mode::Training)?;
        let hs = out
            .h
            .to_array()?
            .into_shape_with_order((t * b, h))
            .expect("[T·B, H]");
        let y = (hs.dot(&w) + c)
            .into_shape_with_order((t, b))
            .expect("[T, B]");
        let err = &y - &target;
        let n = (t * b) as f32;
        let loss = err.mapv(|e| e * e).sum() / n;
        // dL/dy = 2 err / n; dL/dh = dL/dy ⊗ w.
        let dy = err.mapv(|e| 2.0 * e / n);
        let dh = Array3::from_shape_fn((t, b, h), |(k, j, u)| dy[(k, j)] * w[u]);
        let g = layer
            .backward(
                out.trace.as_ref().expect("training"),
                &Tensor::from_array(&ctx, "dh", &dh)?,
                None,
            )?
            .to_cpu()?;
        // Readout gradients.
        let dw = hs
            .t()
            .dot(&dy.view().into_shape_with_order(t * b).expect("contiguous"));
        let dc = dy.sum();
        // SGD.
        p.w_ih.scaled_add(-lr, &g.dw_ih);
        p.w_hh.scaled_add(-lr, &g.dw_hh);
        p.b_ih.scaled_add(-lr, &g.db_ih);
        p.b_hh.scaled_add(-lr, &g.db_hh);
        w.scaled_add(-lr, &dw);
        c -= lr * dc;
        layer.set_params(&p)?;
        if epoch % 50 == 0 {
            let last: Array2<f32> = y.slice(s![t - 3.., 0..1]).to_owned();
            let want = target.slice(s![t - 3.., 0..1]).to_owned();
            println!(
                "epoch {epoch:3}: mse {loss:.5}   last predictions {:?} vs {:?}",
                last.index_axis(Axis(1), 0).to_vec(),
                want.index_axis(Axis(1), 0).to_vec()
            );
        }
    }
    Ok(())
}
