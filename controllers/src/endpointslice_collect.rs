//! The endpointslice-collect controller (`endpointsliceCollect`): for every
//! CrossCluster MultiClusterService, collects the EndpointSlices of its
//! Service from the provider clusters into the control plane. It is the
//! collector of [`crate::service_export`] with
//! [`Source::MultiClusterService`]: the same names and labels, owned by
//! `endpointslice.karmada.io/managed-by: endpointslice-collect-controller`.

use crate::service_export::{Source, run};
use crate::{Context, ControllerFuture};

/// Starts the controller (the `endpointsliceCollect` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx, Source::MultiClusterService))
}
