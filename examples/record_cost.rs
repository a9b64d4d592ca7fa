//! Host cost of recording a long sequence (for profiling the per-step overhead):
//! `cargo run --release --example record_cost`.
use std::time::Instant;

use wgpu_rnn::gpu::{Context, Layer, Mode, Tensor};
use wgpu_rnn::{Cell, Params};

fn main() -> wgpu_rnn::Result<()> {
    let ctx = Context::new()?;
    let (t, b, i, h) = (2000, 4, 32, 32);
    let layer = Layer::new(&ctx, &Params::<f32>::init(Cell::Lstm, i, h, 1)?)?;
    let x = Tensor::zeros(&ctx, "x", &[t, b, i])?;
    let dh = Tensor::zeros(&ctx, "dh", &[t, b, h])?;
    for _ in 0..5 {
        ctx.wait()?;
        let s = Instant::now();
        let out = layer.forward(&x, None, None, Mode::Training)?;
        let f = s.elapsed().as_secs_f64() * 1e6 / t as f64;
        ctx.wait()?;
        let s = Instant::now();
        layer.backward(out.trace.as_ref().expect("trace"), &dh, None)?;
        let bk = s.elapsed().as_secs_f64() * 1e6 / t as f64;
        ctx.wait()?;
        println!("host µs per step: forward {f:.2}, backward {bk:.2}");
    }
    Ok(())
}
