import CRI
import SkiffRuntime

/// ListMetricDescriptors: name, help text and label keys of every metric ListPodSandboxMetrics reports
/// (kubelet asks once, at start, when PodAndContainerStatsFromCRI is on, and serves /metrics/cadvisor from
/// the two). The list is fixed: both RPCs read MetricCatalog, so a metric this host cannot give (pressure
/// stalls without PSI, huge pages without the hugetlb controller) is described but has no values.
extension CRIServer {
    func listMetricDescriptors(_ request: ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse {
        var response = ListMetricDescriptorsResponse()
        response.descriptors = MetricCatalog.descriptors
        return response
    }
}
