{{/*
Names, labels and shared fragments of the numaflow-rdma chart.
*/}}

{{- define "numaflow-rdma.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. */}}
{{- define "numaflow-rdma.componentName" -}}
{{- printf "%s-%s" (include "numaflow-rdma.fullname" .root) .component -}}
{{- end -}}

{{- define "numaflow-rdma.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "numaflow-rdma.labels" -}}
{{ include "numaflow-rdma.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/*
The zone as every component writes it: lower case, no trailing dot. It must
not overlap the cluster domain or a reverse zone, because cluster DNS would
then send the zone's block queries that its kubernetes plugin must answer.
*/}}
{{- define "numaflow-rdma.zone" -}}
{{- $zone := .Values.zone | lower | trimSuffix "." -}}
{{- range list (.Values.clusterDomain | lower | trimSuffix ".") "in-addr.arpa" "ip6.arpa" -}}
{{- if or (eq $zone .) (hasSuffix (printf ".%s" .) $zone) (hasSuffix (printf ".%s" $zone) .) -}}
{{- fail (printf "invalid zone %q: it overlaps %q, which the cluster's CoreDNS answers itself; choose a zone outside it, such as vertexdomain.local" $zone .) -}}
{{- end -}}
{{- end -}}
{{- $zone -}}
{{- end -}}

{{- define "numaflow-rdma.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The RDMA network as namespace/name. */}}
{{- define "numaflow-rdma.network" -}}
{{- printf "%s/%s" (default .Release.Namespace .Values.network.namespace) .Values.network.name -}}
{{- end -}}

{{- define "numaflow-rdma.webhookServiceName" -}}
{{- include "numaflow-rdma.componentName" (dict "root" . "component" "webhook") -}}
{{- end -}}

{{- define "numaflow-rdma.webhookTlsSecretName" -}}
{{- if eq .Values.webhook.certificates.mode "provided" -}}
{{- required "webhook.certificates.provided.secretName is required when webhook.certificates.mode is provided" .Values.webhook.certificates.provided.secretName -}}
{{- else -}}
{{- printf "%s-tls" (include "numaflow-rdma.webhookServiceName" .) -}}
{{- end -}}
{{- end -}}

{{- define "numaflow-rdma.etcdName" -}}
{{- include "numaflow-rdma.componentName" (dict "root" . "component" "etcd") -}}
{{- end -}}

{{- define "numaflow-rdma.zoneDnsName" -}}
{{- include "numaflow-rdma.componentName" (dict "root" . "component" "coredns") -}}
{{- end -}}

{{- define "numaflow-rdma.dnssyncLeaseName" -}}
{{- include "numaflow-rdma.componentName" (dict "root" . "component" "dnssync") -}}
{{- end -}}

{{/*
Client URLs of the DNS etcd as a JSON list: one per member of the chart's
etcd, through its headless Service, or the external endpoints.
*/}}
{{- define "numaflow-rdma.etcdEndpoints" -}}
{{- $endpoints := list -}}
{{- if .Values.etcd.enabled -}}
{{- $name := include "numaflow-rdma.etcdName" . -}}
{{- range $index := until (int .Values.etcd.replicas) -}}
{{- $endpoints = append $endpoints (printf "http://%s-%d.%s-peers.%s.svc:2379" $name $index $name $.Release.Namespace) -}}
{{- end -}}
{{- else -}}
{{- if not .Values.etcd.external.endpoints -}}
{{- fail "etcd.external.endpoints is required when etcd.enabled is false: give the client URLs of your etcd" -}}
{{- end -}}
{{- $endpoints = .Values.etcd.external.endpoints -}}
{{- $secure := 0 -}}
{{- range $endpoints -}}
{{- if hasPrefix "https://" . -}}{{- $secure = add1 $secure -}}{{- end -}}
{{- end -}}
{{- if and (gt $secure 0) (lt $secure (len $endpoints)) -}}
{{- fail "etcd.external.endpoints mixes http:// and https://: one TLS setting applies to every endpoint, so use one scheme" -}}
{{- end -}}
{{- if and .Values.etcd.external.tls.enabled (eq $secure 0) -}}
{{- fail "etcd.external.tls.enabled is true but the endpoints use http://: use https:// endpoints or turn TLS off" -}}
{{- end -}}
{{- end -}}
{{- toJson $endpoints -}}
{{- end -}}

{{- define "numaflow-rdma.etcdUsesTls" -}}
{{- $endpoints := include "numaflow-rdma.etcdEndpoints" . | fromJsonArray -}}
{{- if hasPrefix "https://" (first $endpoints) -}}true{{- end -}}
{{- end -}}

{{/* Whether the etcd TLS Secret is mounted: external etcd with tls.enabled. */}}
{{- define "numaflow-rdma.etcdTlsMounted" -}}
{{- if and (not .Values.etcd.enabled) .Values.etcd.external.tls.enabled -}}true{{- end -}}
{{- end -}}

{{- define "numaflow-rdma.etcdTlsDir" -}}/etc/numaflow-rdma/etcd-tls{{- end -}}

{{- define "numaflow-rdma.etcdUsername" -}}
{{- if not .Values.etcd.enabled -}}{{- .Values.etcd.external.auth.username -}}{{- end -}}
{{- end -}}

{{/* The volume with the etcd TLS files under fixed names: ca.crt, tls.crt, tls.key. */}}
{{- define "numaflow-rdma.etcdTlsVolume" -}}
{{- $tls := .Values.etcd.external.tls -}}
- name: etcd-tls
  secret:
    secretName: {{ required "etcd.external.tls.secretName is required when etcd.external.tls.enabled is true" $tls.secretName }}
    items:
      - key: {{ $tls.caKey }}
        path: ca.crt
      {{- if $tls.clientCertificate }}
      - key: {{ $tls.certKey }}
        path: tls.crt
      - key: {{ $tls.keyKey }}
        path: tls.key
      {{- end }}
{{- end -}}

{{/*
An environment variable with the etcd password from its Secret; the
argument is a dict with "root" and "name" (the variable's name).
*/}}
{{- define "numaflow-rdma.etcdPasswordEnv" -}}
{{- $secret := .root.Values.etcd.external.auth.passwordSecret -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ required "etcd.external.auth.passwordSecret.name is required when etcd.external.auth.username is set" $secret.name }}
      key: {{ $secret.key }}
{{- end -}}

{{/*
The zone CoreDNS's Corefile. It must equal what `numaflow-rdma coredns
--form zone` writes for the same settings, and the chart tests compare the
two, so change both together.
*/}}
{{- define "numaflow-rdma.zoneCorefile" -}}
{{- $dns := .Values.coreDns -}}
{{- $tlsDir := include "numaflow-rdma.etcdTlsDir" . -}}
{{- $username := include "numaflow-rdma.etcdUsername" . -}}
{{ include "numaflow-rdma.zone" . }}:{{ $dns.containerPort }} {
    errors
{{- if $dns.logQueries }}
    log
{{- end }}
{{- if gt (int $dns.lameduck) 0 }}
    health :{{ $dns.healthPort }} {
        lameduck {{ $dns.lameduck }}s
    }
{{- else }}
    health :{{ $dns.healthPort }}
{{- end }}
    ready :{{ $dns.readyPort }}
    prometheus :{{ $dns.metricsPort }}
    cache {
        success 9984 {{ $dns.cache.ttl }}
        denial 9984 {{ $dns.cache.denialTTL }}
{{- if gt (int $dns.cache.serveStale) 0 }}
        serve_stale {{ $dns.cache.serveStale }}s immediate
        servfail 0
{{- end }}
    }
    etcd {
        path {{ .Values.etcd.prefix | trimSuffix "/" }}
        endpoint {{ include "numaflow-rdma.etcdEndpoints" . | fromJsonArray | join " " }}
{{- if include "numaflow-rdma.etcdUsesTls" . }}
{{- $files := list -}}
{{- if include "numaflow-rdma.etcdTlsMounted" . -}}
{{- if .Values.etcd.external.tls.clientCertificate -}}
{{- $files = list (printf "%s/tls.crt" $tlsDir) (printf "%s/tls.key" $tlsDir) -}}
{{- end -}}
{{- $files = append $files (printf "%s/ca.crt" $tlsDir) -}}
{{- end }}
        {{ prepend $files "tls" | join " " }}
{{- end }}
{{- if $username }}
        credentials {{ $username }} {$ETCD_PASSWORD}
{{- end }}
    }
}
{{ end -}}

{{/* Scheduling fields shared by the Deployments: the argument is a dict with "root", "component" and "values". */}}
{{- define "numaflow-rdma.scheduling" -}}
{{- $values := .values -}}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $values.spreadAcrossNodes }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "numaflow-rdma.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}

{{- define "numaflow-rdma.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Log options as environment variables of subcommand .command. */}}
{{- define "numaflow-rdma.logEnv" -}}
- name: NUMAFLOW_RDMA_{{ .command }}_LOG_FORMAT
  value: {{ .root.Values.logging.format | quote }}
- name: NUMAFLOW_RDMA_{{ .command }}_LOG_LEVEL
  value: {{ .root.Values.logging.level | quote }}
{{- end -}}
