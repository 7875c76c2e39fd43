using k8s;

namespace AttestBroker.Kubernetes;

/// <summary>Makes the API client the broker uses: in-cluster (its service account) or from a kubeconfig file.</summary>
public static class KubernetesConnection
{
    /// <summary>
    /// <paramref name="kubeconfigPath"/> null: the in-cluster configuration (service-account token and CA mounted by the
    /// kubelet, KUBERNETES_SERVICE_HOST/PORT); throws <see cref="InvalidOperationException"/> when not in a cluster.
    /// Otherwise the file's current context (for running the broker outside the cluster in a lab).
    /// </summary>
    public static IKubernetes Create(string? kubeconfigPath = null)
    {
        if (kubeconfigPath is not null)
        {
            return new k8s.Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfigPath));
        }

        if (!KubernetesClientConfiguration.IsInCluster())
        {
            throw new InvalidOperationException("not running in a Kubernetes pod (no in-cluster service account); give a kubeconfig file");
        }

        return new k8s.Kubernetes(KubernetesClientConfiguration.InClusterConfig());
    }
}
