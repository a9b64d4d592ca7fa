// The step kernels' shared header (prepended by the crate after activations.wgsl, before
// each kernel): the dimensions uniform and the step schedule's entry — each one layout
// for every step kernel, forward and backward, the same as the Rust `StepDims` and
// `StepSlot` (a test checks them against each other) — the batch rows per invocation,
// and the invocation's coordinates.

struct Dims {
    batch: u32,
    hidden: u32,
    // Forward: whether to keep what backward needs.
    train: u32,
    _pad: u32,
}

// One dispatch's place in the sequence, from the step schedule the engine builds per
// call (selected by a dynamic offset): the kernels never assume t = 0, 1, …, so a
// reversed direction or a layer of a stack is a different schedule, not a kernel edit.
// Rows and slots count [B, H]-sized blocks of the buffers they index.
struct Step {
    // The block of this step's input projection, kept values, gate gradients and
    // upstream gradient.
    row: u32,
    // The slots of h_{t-1} (read) and h_t (written by the forward) in `hs`.
    prev: u32,
    next: u32,
    // Backward: the block of the gate gradients the recurrent carry comes from (the step
    // processed before this one), or NONE.
    carry: u32,
    // The slots of c_{t-1} and c_t in `cs` (cells with a cell state).
    c_prev: u32,
    c_next: u32,
    // Backward: 1 on the final dispatch, which writes dh0 from the carry alone.
    last: u32,
    _pad: u32,
}

const NONE: u32 = 0xffffffffu;

// Batch rows per invocation: set by the template expansion (1, 2, 4 or 8).
const BT: u32 = #BTu;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<uniform> step: Step;

// Where an invocation of a step kernel sits: hidden unit j, batch rows b0 .. b0 + rows;
// `live` is false past the last unit.
struct Invocation {
    j: u32,
    nh: u32,
    nb: u32,
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
        b0,
        min(BT, nb - b0),
        nb * dims.hidden,
        gid.x < dims.hidden,
    );
}
