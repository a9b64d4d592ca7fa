// The recurrent weights of a unit's four slots as one vec4, and the dot of four gate
// gradients with them (the backward carry of common/carry.wgsl).
fn weight(i: u32) -> vec4<f32> {
    return w[i];
}

fn gate_dot(a: vec4<f32>, b: vec4<f32>) -> f32 {
    return dot(a, b);
}
