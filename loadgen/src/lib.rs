//! `beehive-loadgen`: the load generator (DESIGN.md §8).
