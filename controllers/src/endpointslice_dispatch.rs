//! The endpointslice-dispatch controller (`endpointsliceDispatch`): for every
//! CrossCluster MultiClusterService, dispatches the EndpointSlices collected
//! from its provider clusters into each consumer cluster (not back into the
//! cluster they came from), labelled `kubernetes.io/service-name: <service>`
//! and `endpointslice.kubernetes.io/managed-by:
//! endpointslice-dispatch-controller.karmada.io`, and reports the
//! MultiClusterService's `EndpointSliceDispatched` condition. It is the
//! dispatcher of [`crate::service_import`] with [`Mode::MultiClusterService`].

use crate::service_import::{Mode, run};
use crate::{Context, ControllerFuture};

/// Starts the controller (the `endpointsliceDispatch` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx, Mode::MultiClusterService))
}
