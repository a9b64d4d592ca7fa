    // The recurrent carry split over K (common/carry.wgsl has the whole form): this lane
    // sums the terms k = ks, ks + #SPLIT, … of each (row, unit) pair pr; the partial sums
    // meet in workgroup memory, where every lane adds them up in slice order; only a
    // pair's owner (the lane whose slice is pr mod #SPLIT) goes on with it.
    let base#ROW = x_off + e.carry * bh + min(b0 + #Ru, nb - 1u) * rs;
    let col#ROW = w_off + min(j0 + #Ju, nh - 1u);
    var part#ROW = 0.0;
    if (e.carry != NONE) {
        for (var k = ks; k < nh; k += #SPLITu) {
            part#ROW += gate_dot(dg[base#ROW + k], weight(col#ROW + k * nh));
        }
    }
    red_carry[(#ROWu * #SPLITu + ks) * #UNITSu + u] = part#ROW;
    workgroupBarrier();
    if (!live) {
        return;
    }
    var carry#ROW = 0.0;
    for (var s = 0u; s < #SPLITu; s++) {
        carry#ROW += red_carry[(#ROWu * #SPLITu + s) * #UNITSu + u];
    }
    var carry = array<f32, #Q>(#ROWS(carry#ROW));
#include carry_dh0
#module var<workgroup> red_carry: array<f32, #LANES>;
