    // This invocation's (batch row r, unit j) pairs of the step's elementwise part, pr =
    // r·#COLS + (j − its first unit): all of them, or those its K slice owns. (This
    // snippet opens the loop; the kernel's body and closing brace follow it.)
    for (var pr = pr_first; pr < rows * #COLSu; pr += pr_step) {
        let r = pr / #COLSu;
        let j = j0 + pr % #COLSu;
        if (j >= nh) {
            continue;
        }
        let bj = (b0 + r) * rs + j;
