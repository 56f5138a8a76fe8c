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

{{/* The engine's image (the whole CLI). */}}
{{- define "fenceline.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The agent's image (fenceline-agent alone); its tag follows image.tag unless set. */}}
{{- define "fenceline.agentImage" -}}
{{ .Values.agent.image.repository }}:{{ .Values.agent.image.tag | default .Values.image.tag | default .Chart.AppVersion }}
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
The chart reads deploy/ itself (files/deploy is a link to it; `helm package` stores the content):
nothing of what deploy/ ships is copied into the chart.
*/}}

{{/* The objects of a manifest file of deploy/, parsed. */}}
{{- define "fenceline.deployObjects" -}}
{{- $objects := list -}}
{{- range regexSplit "(?m)^---\\s*$" (.root.Files.Get (printf "files/deploy/%s" .file)) -1 -}}
{{- $object := fromYaml . -}}
{{- if get $object "kind" }}{{ $objects = append $objects $object }}{{ end -}}
{{- end -}}
{{- if not $objects -}}
{{- fail (printf "files/deploy/%s (deploy/%s) is missing from the chart or holds no object" .file .file) -}}
{{- end -}}
{{- toJson $objects -}}
{{- end -}}

{{/* The one object of this kind in a manifest file of deploy/. */}}
{{- define "fenceline.deployObject" -}}
{{- $found := dict -}}
{{- range include "fenceline.deployObjects" (dict "root" .root "file" .file) | fromJsonArray -}}
{{- if eq .kind $.kind }}{{ $found = . }}{{ end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "deploy/%s holds no %s" .file .kind) -}}
{{- end -}}
{{- toJson $found -}}
{{- end -}}

{{/* A configuration file of deploy/ (policy.json, agent.json), as written. */}}
{{- define "fenceline.deployConfig" -}}
{{- $text := .root.Files.Get (printf "files/deploy/%s" .file) -}}
{{- if not $text -}}
{{- fail (printf "files/deploy/%s (deploy/%s) is missing from the chart" .file .file) -}}
{{- end -}}
{{- $text -}}
{{- end -}}

{{/*
A JSON configuration of deploy/ with changes merged over it (objects merge key by key, anything
else, lists included, is replaced). Unchanged, it is the text deploy/ ships, so the ConfigMap is
kustomize's; changed, it is the merged document.
*/}}
{{- define "fenceline.mergedJson" -}}
{{- $text := include "fenceline.deployConfig" (dict "root" .root "file" .file) -}}
{{- $base := fromJson $text -}}
{{- if hasKey $base "Error" -}}
{{- fail (printf "deploy/%s: %s" .file $base.Error) -}}
{{- end -}}
{{- $merged := include "fenceline.deepMerge" (dict "base" $base "changes" .changes) | fromJson -}}
{{- if eq (toJson $merged) (toJson $base) -}}
{{- $text | trimSuffix "\n" -}}
{{- else -}}
{{- toPrettyJson $merged -}}
{{- end -}}
{{- end -}}

{{/*
base with changes merged over it, as JSON: objects key by key, anything else (lists, false, 0)
replaces. (Sprig's mergeOverwrite would skip false, 0 and "".)
*/}}
{{- define "fenceline.deepMerge" -}}
{{- $out := deepCopy .base -}}
{{- range $key, $value := .changes -}}
{{- $old := get $out $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $old) -}}
{{- $_ := set $out $key (include "fenceline.deepMerge" (dict "base" $old "changes" $value) | fromJson) -}}
{{- else -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* policy.json: deploy/policy.json with the values' policy merged over it. */}}
{{- define "fenceline.policy" -}}
{{- include "fenceline.mergedJson" (dict "root" . "file" "policy.json" "changes" .Values.policy) -}}
{{- end -}}

{{/*
agent.json: deploy/agent.json with the values' agent.config merged over it and NATS filled in
(the release's NATS or nats.url). The node's name and address (__NODE_NAME__, __NODE_IP__) are
left for the init container.
*/}}
{{- define "fenceline.agentConfig" -}}
{{- $changes := include "fenceline.deepMerge" (dict "base" .Values.agent.config "changes" (dict "nats" (dict "url" (include "fenceline.natsUrl" .)))) | fromJson -}}
{{- include "fenceline.mergedJson" (dict "root" . "file" "agent.json" "changes" $changes) -}}
{{- end -}}

{{/* The rules of the engine's ClusterRole, as deploy/rbac.yaml grants them. */}}
{{- define "fenceline.engineRules" -}}
{{- $role := include "fenceline.deployObject" (dict "root" . "file" "rbac.yaml" "kind" "ClusterRole") | fromJson -}}
{{- required "deploy/rbac.yaml: the ClusterRole has no rules" $role.rules | toYaml -}}
{{- end -}}

{{/*
The agent DaemonSet's init container that fills in the node's name and address, as
deploy/agent.yaml has it (its command and environment), with agent.initImage.
*/}}
{{- define "fenceline.agentInitContainers" -}}
{{- $daemonSet := include "fenceline.deployObject" (dict "root" . "file" "agent.yaml" "kind" "DaemonSet") | fromJson -}}
{{- $containers := list -}}
{{- range $daemonSet.spec.template.spec.initContainers -}}
{{- $containers = append $containers (set . "image" $.Values.agent.initImage) -}}
{{- end -}}
{{- toYaml $containers -}}
{{- end -}}

{{/* Whether power fencing is configured: a devices file from the values or an existing ConfigMap. */}}
{{- define "fenceline.fenceDevices" -}}
{{- if or .Values.fencing.devices .Values.fencing.existingConfigMap -}}true{{- end -}}
{{- end -}}

{{/* Whether the policy's fencing powers nodes off (fenceAgent, or a level naming anything but the watchdog). */}}
{{- define "fenceline.policyPowersOff" -}}
{{- $fencing := get (include "fenceline.policy" . | fromJson) "fencing" | default dict -}}
{{- $powers := eq (toString (get $fencing "fenceAgent")) "true" -}}
{{- $topologies := list (get $fencing "levels" | default list) -}}
{{- range $_, $levels := (get $fencing "hostGroups" | default dict) }}{{ $topologies = append $topologies $levels }}{{ end -}}
{{- range $_, $levels := (get $fencing "nodes" | default dict) }}{{ $topologies = append $topologies $levels }}{{ end -}}
{{- range $levels := $topologies -}}
{{- range $level := $levels -}}
{{- $methods := $level -}}
{{- if kindIs "map" $level }}{{ $methods = get $level "methods" | default list }}{{ end -}}
{{- range $method := $methods }}{{ if ne $method "watchdog" }}{{ $powers = true }}{{ end }}{{ end -}}
{{- end -}}
{{- end -}}
{{- if $powers }}true{{ end -}}
{{- end -}}

{{/* The Secret mounted as the fence credentials: an existing one, or the chart's; empty for none. */}}
{{- define "fenceline.fenceCredentialsSecret" -}}
{{- if and .Values.fencing.credentials.existingSecret .Values.fencing.credentials.data -}}
{{- fail "fencing.credentials: give existingSecret or data, not both" -}}
{{- end -}}
{{- if .Values.fencing.credentials.existingSecret -}}
{{- .Values.fencing.credentials.existingSecret -}}
{{- else if .Values.fencing.credentials.data -}}
{{- include "fenceline.fullname" . }}-fence-credentials
{{- end -}}
{{- end -}}
