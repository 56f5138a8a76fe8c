{{/* The release's name prefix: "fenceline" for a release called fenceline. */}}
{{- define "fenceline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object: the ones deploy/ uses, plus Helm's. */}}
{{- define "fenceline.labels" -}}
app.kubernetes.io/part-of: fenceline
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fenceline.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The NATS Service name (the single server's client Service, or the cluster's). */}}
{{- define "fenceline.natsService" -}}
nats
{{- end -}}

{{/* Where the engine and the agents reach NATS. */}}
{{- define "fenceline.natsUrl" -}}
{{- if .Values.nats.enabled -}}
nats://{{ include "fenceline.natsService" . }}.{{ .Release.Namespace }}.svc:4222
{{- else -}}
{{- required "nats.enabled is false: set nats.url to your NATS (with JetStream), e.g. nats://nats.nats.svc:4222" .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/*
agent.json: the values' agent.config with the node's name and address left for the init
container (__NODE_NAME__, __NODE_IP__) and NATS filled in.
*/}}
{{- define "fenceline.agentConfig" -}}
{{- $fill := dict "node" "__NODE_NAME__" "nats" (dict "url" (include "fenceline.natsUrl" .)) "peerAdvertiseUrl" (printf "http://__NODE_IP__:%v" .Values.agent.config.peerListen.port) -}}
{{- toPrettyJson (merge $fill .Values.agent.config) -}}
{{- end -}}
