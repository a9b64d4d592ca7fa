// The step kernels' shared header (prepended by the crate after activations.wgsl, before
// each kernel): the dimensions uniform — one layout for every step kernel, forward and
// backward, the same as the Rust `StepDims` (a test checks them against each other) —
// the step index, the batch rows per invocation, and the invocation's coordinates.

struct Dims {
    batch: u32,
    hidden: u32,
    // Forward: cell-state slots (T + 1 in training, 2 in inference); backward: T.
    slots: u32,
    // Forward: whether to keep what backward needs.
    train: u32,
}

struct Step {
    t: u32,
}

// Batch rows per invocation: set by the template expansion (1, 2, 4 or 8).
const BT: u32 = #BTu;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<uniform> step: Step;

// Where an invocation of a step kernel sits: hidden unit j, batch rows b0 .. b0 + rows,
// step t; `live` is false past the last unit.
struct Invocation {
    j: u32,
    nh: u32,
    nb: u32,
    t: u32,
    b0: u32,
    rows: u32,
    bh: u32,
    live: bool,
}

fn invocation(gid: vec3<u32>, wid: vec3<u32>) -> Invocation {
    let nb = dims.batch;
    let b0 = wid.y * BT;
    return Invocation(
        gid.x,
        dims.hidden,
        nb,
        step.t,
        b0,
        min(BT, nb - b0),
        nb * dims.hidden,
        gid.x < dims.hidden,
    );
}
