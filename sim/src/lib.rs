//! flotilla-sim: simulated member clusters — flotilla's API server plus fake
//! workload controllers (nodes, pods, workload status, endpoints, metrics).
