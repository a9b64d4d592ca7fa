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
    // Directions advancing in each dispatch (grid z): 1, or 2 for a bidirectional layer.
    // Every buffer interleaves them within a row: row (t, b) holds direction 0's H units
    // then direction 1's (the layout of a bidirectional layer's output [T, B, D·H]); the
    // weights are one [H, H] block per direction.
    dirs: u32,
}

// One direction's place in the sequence at one dispatch, from the step schedule the
// engine builds per call: the kernels never assume t = 0, 1, …, so a reversed direction
// or a layer of a stack is a different schedule, not a kernel edit. Rows and slots count
// [B, H]-sized blocks of the direction's part of the buffers they index.
struct StepDir {
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
    // Batch rows within their sequence at this step: the rows are sorted by length, so
    // rows b < live are, the others are past their end (forward: they keep their
    // state; backward: no gradient). B without lengths; 0 at the final entry.
    live: u32,
    // Backward: `live` of the carry's block (0 for none).
    live_carry: u32,
}

// One dispatch: an entry per direction (selected by a dynamic offset).
struct Step {
    dirs: array<StepDir, 2>,
    // Backward: 1 on the final dispatch, which writes dh0 from the carry alone.
    last: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const NONE: u32 = 0xffffffffu;

// Batch rows per invocation: set by the template expansion (1, 2, 4 or 8).
const BT: u32 = #BTu;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<uniform> step: Step;

// This invocation's direction (grid z), its schedule entry, where its direction's units
// start within a row of every buffer (column d·H: the row buffers, `hs`, `cs`, the
// one-state buffers of carries, dh0 and the gated state) and its weights' block (d·H·H).
// Set by invocation().
var<private> dir: u32;
var<private> e: StepDir;
var<private> x_off: u32;
var<private> h_off: u32;
var<private> c_off: u32;
var<private> s_off: u32;
var<private> w_off: u32;

// Where an invocation of a step kernel sits: hidden unit j, batch rows b0 .. b0 + rows;
// `live` is false past the last unit.
struct Invocation {
    j: u32,
    nh: u32,
    nb: u32,
    b0: u32,
    rows: u32,
    bh: u32,
    rs: u32,
    live: bool,
}

fn invocation(gid: vec3<u32>, wid: vec3<u32>) -> Invocation {
    let nb = dims.batch;
    let b0 = wid.y * BT;
    dir = wid.z;
    e = step.dirs[dir];
    x_off = dir * dims.hidden;
    h_off = x_off;
    c_off = x_off;
    s_off = x_off;
    w_off = dir * dims.hidden * dims.hidden;
    return Invocation(
        gid.x,
        dims.hidden,
        nb,
        b0,
        min(BT, nb - b0),
        nb * dims.dirs * dims.hidden,
        dims.dirs * dims.hidden,
        gid.x < dims.hidden,
    );
}
