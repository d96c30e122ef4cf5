// The fixture generator for Numaflow pods; see main.go. It has its own module
// so the project's Python build never needs Go or Numaflow's dependencies.
module numaflow-rdma/hack/numaflow-pods

go 1.25.10

// Numaflow v1.8.3's go.mod has no replace directives, so none are mirrored
// here. If a later release adds some, copy them below when raising the pin.
require github.com/numaproj/numaflow v1.8.3

// The versions Numaflow v1.8.3 itself requires, so the pods are built with the
// same Kubernetes and controller-runtime code as in its release.
require (
	go.uber.org/zap v1.26.0
	k8s.io/api v0.32.2
	k8s.io/apimachinery v0.32.2
	k8s.io/client-go v0.32.2
	sigs.k8s.io/controller-runtime v0.19.6
	sigs.k8s.io/yaml v1.4.0
)
