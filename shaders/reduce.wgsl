// Column sums: out[j] (+)= Σ_r x[r, j] for x [rows, cols] (bias gradients). One
// invocation per column, so consecutive invocations read consecutive addresses; a long
// sum first makes partial sums of SUM_ROWS rows each (col_sum_part), then sums those.

struct Params {
    rows: u32,
    cols: u32,
    accumulate: u32,
    // The first element of x (a long column sum runs in chunks of rows).
    x_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn col_sum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= p.cols) {
        return;
    }
    var s = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        s += x[p.x_off + r * p.cols + j];
    }
    if (p.accumulate != 0u) {
        s += out[j];
    }
    out[j] = s;
}

// Rows per partial sum (the Rust `SUM_ROWS`).
const SUM_ROWS: u32 = 64u;

// The first pass of a long column sum: out[(accumulate + part) · cols + j] = Σ of rows
// part·SUM_ROWS … of x from x_off (`accumulate` holds the dispatch's first part; rows
// counts this dispatch's).
@compute @workgroup_size(64)
fn col_sum_part(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= p.cols) {
        return;
    }
    let r0 = gid.y * SUM_ROWS;
    let r1 = min(r0 + SUM_ROWS, p.rows);
    var s = 0.0;
    for (var r = r0; r < r1; r++) {
        s += x[p.x_off + r * p.cols + j];
    }
    out[(p.accumulate + gid.y) * p.cols + j] = s;
}
