import CRI
import GRPCCore
import ServiceLifecycle
import SkiffRuntime
import SkiffSupport

/// GetContainerEvents streams container lifecycle events (kubelet's Evented PLEG): CREATED, STARTED, STOPPED
/// and DELETED of every container and of every sandbox (under its own id), from the moment of the call, each
/// with the pod's PodSandboxStatus and its containers' statuses. The stream lasts until the client leaves or
/// skiffd shuts down (it then ends with OK). A client that does not keep up is cut off with
/// RESOURCE_EXHAUSTED rather than slowing the runtime down (see EventHub).
extension CRIServer {
    func getContainerEvents(_ request: GetEventsRequest, writer: RPCWriter<ContainerEventResponse>) async throws {
        let subscription = context.events.subscribe()
        defer { subscription.cancel() }
        // gRPC reports a client that left through the RPC's cancellation handle, not by cancelling this task.
        try await withGracefulShutdownHandler {
            try await withRPCCancellationHandler {
                do {
                    for try await event in subscription.events { try await writer.write(event) }
                } catch let error as EventHubError {
                    throw error.skiffError
                }
            } onCancelRPC: {
                subscription.cancel()
            }
        } onGracefulShutdown: {
            subscription.cancel()
        }
    }

    /// The statuses an event carries: the pod's PodSandboxStatus and its containers' statuses as they are in
    /// the index now (no exit is folded in here: that is the exit watcher's job, under the container's lock).
    func eventStatuses(sandboxId: String) -> (sandbox: PodSandboxStatus?, containers: [CRI.ContainerStatus]) {
        guard let sandbox = context.sandboxes.get(sandboxId) else { return (nil, []) }
        let status = sandboxStatusMessage(sandbox, ready: sandboxState(sandbox) == .sandboxReady)
        let containers = context.containers.inSandbox(sandboxId).sorted { $0.createdAt < $1.createdAt }.map { containerStatusMessage($0) }
        return (status, containers)
    }
}
