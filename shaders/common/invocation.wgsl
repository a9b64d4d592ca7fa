    // Where this invocation sits (common/step.wgsl), or nothing to do past the last unit.
    // An invocation carries #COLS consecutive units from j0 (and those past the last
    // unit are skipped).
    let v = invocation(vec3<u32>(gid.x * #COLSu, gid.y, gid.z), wid);
    if (!v.live) {
        return;
    }
    let j0 = v.j;
    // This invocation's (row, unit) pairs of the step's elementwise part: all of them.
    let pr_first = 0u;
    let pr_step = 1u;
#include invocation_lets
