{{/* Shared parts of the cluster DNS Jobs. */}}

{{- define "numaflow-rdma.clusterDnsForm" -}}
{{- $forms := dict "kubeadm" "forward-kubeadm" "custom" "forward-custom" -}}
{{- index $forms .Values.clusterDns.configure -}}
{{- end -}}

{{/* The ConfigMap the Jobs write, as a JSON list [namespace, name]. */}}
{{- define "numaflow-rdma.clusterDnsConfigMap" -}}
{{- if .Values.clusterDns.configMap -}}
{{- $parts := splitList "/" .Values.clusterDns.configMap -}}
{{- if ne (len $parts) 2 -}}
{{- fail (printf "invalid clusterDns.configMap %q: expected NAMESPACE/NAME, such as kube-system/coredns" .Values.clusterDns.configMap) -}}
{{- end -}}
{{- toJson $parts -}}
{{- else if eq .Values.clusterDns.configure "kubeadm" -}}
{{- toJson (list "kube-system" "coredns") -}}
{{- else -}}
{{- toJson (list "kube-system" "coredns-custom") -}}
{{- end -}}
{{- end -}}

{{- define "numaflow-rdma.clusterDnsName" -}}
{{- include "numaflow-rdma.componentName" (dict "root" . "component" "cluster-dns") -}}
{{- end -}}

{{/* The pod spec of a Job; "remove" in the argument dict selects the uninstall Job. */}}
{{- define "numaflow-rdma.clusterDnsPodSpec" -}}
{{- $root := .root -}}
{{- $target := include "numaflow-rdma.clusterDnsConfigMap" $root | fromJsonArray -}}
serviceAccountName: {{ include "numaflow-rdma.clusterDnsName" $root }}
restartPolicy: Never
enableServiceLinks: false
{{- with include "numaflow-rdma.imagePullSecrets" $root | trim }}{{ . | nindent 0 }}{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: cluster-dns
    image: {{ include "numaflow-rdma.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args: ["coredns"]
    env:
      - name: NUMAFLOW_RDMA_COREDNS_APPLY
        value: "true"
      {{- if .remove }}
      - name: NUMAFLOW_RDMA_COREDNS_REMOVE
        value: "true"
      {{- end }}
      - name: NUMAFLOW_RDMA_COREDNS_FORM
        value: {{ include "numaflow-rdma.clusterDnsForm" $root | quote }}
      - name: NUMAFLOW_RDMA_COREDNS_CLUSTER_DNS_CONFIGMAP
        value: {{ join "/" $target | quote }}
      - name: NUMAFLOW_RDMA_COREDNS_ZONE
        value: {{ include "numaflow-rdma.zone" $root | quote }}
      - name: NUMAFLOW_RDMA_COREDNS_CLUSTER_DOMAIN
        value: {{ $root.Values.clusterDomain | quote }}
      - name: NUMAFLOW_RDMA_COREDNS_UPSTREAM_SERVICE
        value: {{ printf "%s/%s" $root.Release.Namespace (include "numaflow-rdma.zoneDnsName" $root) | quote }}
      - name: NUMAFLOW_RDMA_COREDNS_CACHE_TTL
        value: {{ $root.Values.coreDns.cache.ttl | quote }}
      - name: NUMAFLOW_RDMA_COREDNS_CACHE_DENIAL_TTL
        value: {{ $root.Values.coreDns.cache.denialTTL | quote }}
      - name: NUMAFLOW_RDMA_COREDNS_SERVE_STALE
        value: {{ $root.Values.coreDns.cache.serveStale | quote }}
      {{- include "numaflow-rdma.logEnv" (dict "root" $root "command" "COREDNS") | nindent 6 }}
    resources:
      {{- toYaml $root.Values.clusterDns.resources | nindent 6 }}
    securityContext:
      {{- toYaml $root.Values.containerSecurityContext | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
volumes:
  - name: tmp
    emptyDir:
      medium: Memory
      sizeLimit: 16Mi
{{- end -}}
