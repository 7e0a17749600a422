//! flotilla-controllers: every controller, on kube-rs's runtime, each in its own
//! module with `controller.rs` (wiring) and `reconcile.rs` (logic).
