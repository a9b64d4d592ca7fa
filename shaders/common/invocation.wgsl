    // Where this invocation sits (common/step.wgsl), or nothing to do past the last unit.
    let v = invocation(gid, wid);
    if (!v.live) {
        return;
    }
    let j = v.j;
    // This invocation's rows of the step's elementwise part: all of them.
    let r_first = 0u;
    let r_step = 1u;
#include invocation_lets
