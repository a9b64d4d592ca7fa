    // Where this invocation sits (common/step.wgsl) in a workgroup split over K: lane `u`
    // of the workgroup's #UNITS lanes of #COLS units, slice `ks` of #SPLIT (the workgroup's 64 lanes are
    // #SPLIT slices of #UNITS consecutive units, so a slice reads consecutive weights). A
    // lane past the last unit computes the last unit's partial sums, takes part in the
    // barrier, then stops (`live`).
    let lane = gid.x - wid.x * 64u;
    let u = lane % #UNITSu;
    let ks = lane / #UNITSu;
    let v = invocation(vec3<u32>((wid.x * #UNITSu + u) * #COLSu, gid.y, gid.z), wid);
    let live = v.live;
    let j0 = min(v.j, v.nh - 1u);
    // This lane's (row, unit) pairs of the step's elementwise part: every #SPLIT-th from
    // its slice.
    let pr_first = ks;
    let pr_step = #SPLITu;
#include invocation_lets
