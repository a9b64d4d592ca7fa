        // One batch row r (element bj) of a GRU backward step (both variants), within its
        // sequence: the gradient g reaching
        // h_t (upstream, carry and direct part), then the update and candidate gradients
        // from the kept (r, z, n) in `q`.
        let q = gates[at + bj];
        let h_prev = hs[prev + bj];
        let g = dh[at + bj] + carry[pr] + dd[s_off + bj];
        let d_n = g * (1.0 - q.y) * (1.0 - q.z * q.z);
        let d_z = g * (h_prev - q.z) * q.y * (1.0 - q.y);
