// Activations shared by the step kernels (prepended to them by the crate): stable for any
// finite input, since exp only ever sees a non-positive argument.

fn sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    let s = 1.0 / (1.0 + e);
    return select(e * s, s, x >= 0.0);
}

// tanh from one exp of -2|x|, with a series near zero where 1 - e^{-2|x|} would cancel
// (the CPU path's f32 tanh is the same formula).
fn tanh_stable(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    let t = (1.0 - e) / (1.0 + e);
    let small = x - x * x * x * (1.0 / 3.0);
    return select(sign(x) * t, small, abs(x) < 0.004);
}

