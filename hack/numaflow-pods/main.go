// Command numaflow-pods writes the pods that Numaflow's own controllers build
// for the pipelines in manifests/, as JSON test fixtures for the webhook.
//
// It runs Numaflow's pipeline, vertex and MonoVertex reconcilers (the code the
// controller manager runs, pinned in go.mod) against controller-runtime's
// in-memory client, then reads back the pods they created. Pod names, labels,
// annotations, containers and NUMAFLOW_VERTEX_OBJECT are therefore exactly
// what a cluster would see at admission. Two layouts are written for every
// pipeline: "sidecar", where user containers are native sidecars in
// spec.initContainers (Kubernetes 1.29 and later), and "legacy", where they sit
// in spec.containers (older Kubernetes), chosen through the K8S_SERVER_VERSION
// variable the controller reads.
//
// Pods that Deployments and Jobs would create (pipeline daemon, side-input
// manager, buffer-creation job, MonoVertex daemon) are made here from the pod
// template, with names shaped as the ReplicaSet and Job controllers shape
// them, because those controllers do not run here.
//
// Pod names end in five random characters, as in a cluster, so they change
// every time the fixtures are generated.
//
// Rerun it from the repository root with:
//
//	hack/numaflow-pods/generate.sh
//
// which writes numaflow_rdma/fixtures/numaflow/*.json. See generate.sh for how
// to build against a local Numaflow checkout when the Go module proxy does not
// serve github.com/numaproj/numaflow.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	dfv1 "github.com/numaproj/numaflow/pkg/apis/numaflow/v1alpha1"
	"github.com/numaproj/numaflow/pkg/reconciler"
	mvtxcontroller "github.com/numaproj/numaflow/pkg/reconciler/monovertex"
	mvtxscaling "github.com/numaproj/numaflow/pkg/reconciler/monovertex/scaling"
	plcontroller "github.com/numaproj/numaflow/pkg/reconciler/pipeline"
	vertexcontroller "github.com/numaproj/numaflow/pkg/reconciler/vertex"
	"github.com/numaproj/numaflow/pkg/reconciler/vertex/scaling"
)

// numaflowVersion must match the version of github.com/numaproj/numaflow in go.mod.
const numaflowVersion = "v1.8.3"

const (
	controllerImage  = "quay.io/numaproj/numaflow:" + numaflowVersion
	jetStreamVersion = "2.10.3"
)

// layouts maps a layout name to the Kubernetes version given to the
// controller. The sidecar layout uses 1.31 because Numaflow v1.8.3 parses the
// version as a float32 and compares it with the float64 1.29, so "1.29" itself
// falls below the threshold and gets the legacy layout.
var layouts = map[string]string{
	"sidecar": "1.31",
	"legacy":  "1.28",
}

// fixture is the content of one output file.
type fixture struct {
	NumaflowVersion   string       `json:"numaflowVersion"`
	KubernetesVersion string       `json:"kubernetesVersion"`
	Layout            string       `json:"layout"`
	Source            string       `json:"source"`
	Pods              []corev1.Pod `json:"pods"`
}

func main() {
	manifests := flag.String("manifests", "manifests", "folder with the Pipeline and MonoVertex manifests")
	output := flag.String("output", "../../numaflow_rdma/fixtures/numaflow", "folder to write the fixtures into")
	flag.Parse()

	for _, layout := range sortedKeys(layouts) {
		if err := os.Setenv(dfv1.EnvK8sServerVersion, layouts[layout]); err != nil {
			log.Fatal(err)
		}
		var others []corev1.Pod
		for _, name := range []string{"sample", "video"} {
			pipeline := &dfv1.Pipeline{}
			readManifest(filepath.Join(*manifests, name+".yaml"), pipeline)
			vertexPods, otherPods := pipelinePods(pipeline)
			writeFixture(*output, name, layout, "manifests/"+name+".yaml", vertexPods)
			if name == "sample" {
				others = append(others, otherPods...)
			}
		}
		monoVertex := &dfv1.MonoVertex{}
		readManifest(filepath.Join(*manifests, "monovertex.yaml"), monoVertex)
		others = append(others, monoVertexPods(monoVertex)...)
		writeFixture(*output, "others", layout, "manifests/sample.yaml, manifests/monovertex.yaml", others)
	}
}

func readManifest(path string, into runtime.Object) {
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		log.Fatalf("invalid manifest %s: %v", path, err)
	}
}

func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		dfv1.AddToScheme, corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			log.Fatal(err)
		}
	}
	return scheme
}

// globalConfig is the controller configuration of a default install. The
// only way to build one outside /etc/numaflow is Numaflow's own test helper,
// which needs a *testing.T but uses nothing of it.
func globalConfig() *reconciler.GlobalConfig {
	return reconciler.FakeGlobalConfig(&testing.T{}, &reconciler.ISBSvcConfig{
		JetStream: &reconciler.JetStreamConfig{
			Versions: []reconciler.JetStreamVersion{{
				Version:              jetStreamVersion,
				NatsImage:            "nats:" + jetStreamVersion,
				MetricsExporterImage: "natsio/prometheus-nats-exporter:0.16.0",
				ConfigReloaderImage:  "natsio/nats-server-config-reloader:0.16.0",
			}},
		},
	})
}

// healthyISBService returns the default JetStream InterStepBufferService with
// the status its controller writes once the StatefulSet is up.
func healthyISBService(namespace string) *dfv1.InterStepBufferService {
	service := &dfv1.InterStepBufferService{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: dfv1.DefaultISBSvcName},
		Spec: dfv1.InterStepBufferServiceSpec{
			JetStream: &dfv1.JetStreamBufferService{Version: jetStreamVersion},
		},
	}
	service.Status.MarkConfigured()
	service.Status.MarkDeployed()
	service.Status.Config = dfv1.BufferServiceConfig{
		JetStream: &dfv1.JetStreamConfig{
			URL: fmt.Sprintf("nats://isbsvc-%s-js-svc.%s.svc:4222", dfv1.DefaultISBSvcName, namespace),
			Auth: &dfv1.NatsAuth{
				Basic: &dfv1.BasicAuth{
					User: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "isbsvc-default-js-client-auth"},
						Key:                  "client-auth-user",
					},
					Password: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "isbsvc-default-js-client-auth"},
						Key:                  "client-auth-password",
					},
				},
			},
		},
	}
	return service
}

func newClient(objects ...client.Object) client.WithWatch {
	return fake.NewClientBuilder().WithScheme(newScheme()).WithObjects(objects...).Build()
}

// reconcileOnce runs one reconciliation. The controllers end it with a
// server-side-apply status patch, which the in-memory client rejects. Every
// child object exists by then, so that error is only logged, and the callers
// check that the children they expect exist.
func reconcileOnce(r interface {
	Reconcile(context.Context, ctrl.Request) (ctrl.Result, error)
}, namespace, name string,
) {
	request := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}}
	if _, err := r.Reconcile(context.Background(), request); err != nil {
		log.Printf("reconcile %s/%s ended with: %v", namespace, name, err)
	}
}

// pipelinePods returns the vertex pods of a pipeline, ordered as its vertices
// and by replica, and the pods of its daemon, side-input managers and jobs.
func pipelinePods(pipeline *dfv1.Pipeline) ([]corev1.Pod, []corev1.Pod) {
	ctx := context.Background()
	namespace := pipeline.Namespace
	pipeline.UID = stableUID("Pipeline", namespace, pipeline.Name)
	cl := newClient(healthyISBService(namespace), pipeline)
	logger := zap.NewNop().Sugar()
	config := globalConfig()

	// First the pipeline controller makes the Vertex objects, the daemon and
	// side-input manager Deployments and the buffer-creation Job.
	plReconciler := plcontroller.NewReconciler(cl, cl.Scheme(), config, controllerImage, logger, record.NewFakeRecorder(1000))
	reconcileOnce(plReconciler, namespace, pipeline.Name)

	// The in-memory client assigns no UIDs, and the API server rejects owner
	// references without one, so each Vertex gets a stable UID first.
	var vertices dfv1.VertexList
	must(cl.List(ctx, &vertices, client.InNamespace(namespace)))
	for i := range vertices.Items {
		vertices.Items[i].UID = stableUID("Vertex", namespace, vertices.Items[i].Name)
		must(cl.Update(ctx, &vertices.Items[i]))
	}

	// Then the vertex controller makes the pods of each vertex.
	vertexReconciler := vertexcontroller.NewReconciler(cl, cl.Scheme(), config, controllerImage, scaling.NewScaler(cl), logger, record.NewFakeRecorder(1000))
	for _, vertex := range pipeline.Spec.Vertices {
		reconcileOnce(vertexReconciler, namespace, pipeline.Name+"-"+vertex.Name)
	}

	var pods corev1.PodList
	must(cl.List(ctx, &pods, client.InNamespace(namespace)))
	order := map[string]int{}
	for i, vertex := range pipeline.Spec.Vertices {
		order[vertex.Name] = i
	}
	vertexPods := cleanPods(pods.Items)
	sort.SliceStable(vertexPods, func(i, j int) bool {
		a, b := vertexPods[i], vertexPods[j]
		va, vb := a.Labels[dfv1.KeyVertexName], b.Labels[dfv1.KeyVertexName]
		if va != vb {
			return order[va] < order[vb]
		}
		return replicaOf(a) < replicaOf(b)
	})
	for _, vertex := range pipeline.Spec.Vertices {
		if countVertexPods(vertexPods, vertex.Name) == 0 {
			log.Fatalf("the vertex controller made no pod for vertex %s of pipeline %s", vertex.Name, pipeline.Name)
		}
	}

	var others []corev1.Pod
	var deployments appsv1.DeploymentList
	must(cl.List(ctx, &deployments, client.InNamespace(namespace)))
	for _, deployment := range deployments.Items {
		others = append(others, podFromDeployment(deployment))
	}
	var jobs batchv1.JobList
	must(cl.List(ctx, &jobs, client.InNamespace(namespace)))
	for _, job := range jobs.Items {
		others = append(others, podFromJob(job))
	}
	return vertexPods, others
}

// monoVertexPods returns the pods of a MonoVertex and of its daemon.
func monoVertexPods(monoVertex *dfv1.MonoVertex) []corev1.Pod {
	ctx := context.Background()
	namespace := monoVertex.Namespace
	monoVertex.UID = stableUID("MonoVertex", namespace, monoVertex.Name)
	cl := newClient(monoVertex)
	r := mvtxcontroller.NewReconciler(cl, cl.Scheme(), globalConfig(), controllerImage, mvtxscaling.NewScaler(cl), zap.NewNop().Sugar(), record.NewFakeRecorder(1000))
	reconcileOnce(r, namespace, monoVertex.Name)

	var pods corev1.PodList
	must(cl.List(ctx, &pods, client.InNamespace(namespace)))
	if len(pods.Items) == 0 {
		log.Fatalf("the MonoVertex controller made no pod for %s", monoVertex.Name)
	}
	result := cleanPods(pods.Items)
	var deployments appsv1.DeploymentList
	must(cl.List(ctx, &deployments, client.InNamespace(namespace)))
	for _, deployment := range deployments.Items {
		result = append(result, podFromDeployment(deployment))
	}
	return result
}

// cleanPods drops what the in-memory client added on create, so each pod is
// the object the controller sent, as an admission request carries it.
func cleanPods(pods []corev1.Pod) []corev1.Pod {
	result := make([]corev1.Pod, 0, len(pods))
	for _, pod := range pods {
		pod.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
		pod.ResourceVersion = ""
		result = append(result, pod)
	}
	return result
}

// podFromDeployment builds the pod a Deployment's ReplicaSet would create:
// name <deployment>-<pod-template-hash>-<5 characters>.
func podFromDeployment(deployment appsv1.Deployment) corev1.Pod {
	template := deployment.Spec.Template
	templateHash := shortHash(deployment.Name, 10)
	labels := copyMap(template.Labels)
	labels["pod-template-hash"] = templateHash
	replicaSet := deployment.Name + "-" + templateHash
	return corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   deployment.Namespace,
			Name:        replicaSet + "-" + shortHash(replicaSet, 5),
			Labels:      labels,
			Annotations: copyMap(template.Annotations),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: replicaSet,
				UID:        stableUID("ReplicaSet", deployment.Namespace, replicaSet),
				Controller: boolPointer(true), BlockOwnerDeletion: boolPointer(true),
			}},
		},
		Spec: template.Spec,
	}
}

// podFromJob builds the pod a Job would create: name <job>-<5 characters>.
func podFromJob(job batchv1.Job) corev1.Pod {
	template := job.Spec.Template
	labels := copyMap(template.Labels)
	labels["batch.kubernetes.io/job-name"] = job.Name
	labels["job-name"] = job.Name
	return corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   job.Namespace,
			Name:        job.Name + "-" + shortHash(job.Name, 5),
			Labels:      labels,
			Annotations: copyMap(template.Annotations),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "Job", Name: job.Name,
				UID:        stableUID("Job", job.Namespace, job.Name),
				Controller: boolPointer(true), BlockOwnerDeletion: boolPointer(true),
			}},
		},
		Spec: template.Spec,
	}
}

func writeFixture(folder, name, layout, source string, pods []corev1.Pod) {
	content := fixture{
		NumaflowVersion:   numaflowVersion,
		KubernetesVersion: layouts[layout],
		Layout:            layout,
		Source:            "hack/numaflow-pods/" + strings.ReplaceAll(source, ", ", ", hack/numaflow-pods/"),
		Pods:              pods,
	}
	data, err := json.MarshalIndent(content, "", "  ")
	must(err)
	must(os.MkdirAll(folder, 0o755))
	path := filepath.Join(folder, fmt.Sprintf("%s-%s.json", name, layout))
	must(os.WriteFile(path, append(data, '\n'), 0o644))
	log.Printf("wrote %d pods to %s", len(pods), path)
}

func replicaOf(pod corev1.Pod) int {
	replica, err := strconv.Atoi(pod.Annotations[dfv1.KeyReplica])
	if err != nil {
		return -1
	}
	return replica
}

func countVertexPods(pods []corev1.Pod, vertex string) int {
	count := 0
	for _, pod := range pods {
		if pod.Labels[dfv1.KeyVertexName] == vertex {
			count++
		}
	}
	return count
}

// shortHash returns n lower-case hex characters derived from text, so the
// names of pods made from templates are stable between runs.
func shortHash(text string, n int) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])[:n]
}

// stableUID returns a UUID-shaped UID derived from the object's kind and name.
func stableUID(kind, namespace, name string) types.UID {
	h := shortHash(kind+"/"+namespace+"/"+name, 32)
	return types.UID(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32])
}

func copyMap(in map[string]string) map[string]string {
	out := make(map[string]string, len(in)+2)
	for key, value := range in {
		out[key] = value
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

func boolPointer(value bool) *bool { return &value }

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
