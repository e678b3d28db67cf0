{{/*
The chart name, or nameOverride. Truncated at 63 characters because some Kubernetes name fields are
limited to that (DNS label, RFC 1123).
*/}}
{{- define "shimshift.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the objects this release creates: fullnameOverride, or "<release>-<chart>", or just
the release name when it already contains the chart name (so `helm install shimshift` gives
"shimshift", not "shimshift-shimshift"). Truncated at 63 characters for the same reason.
*/}}
{{- define "shimshift.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Labels on every object: the recommended app.kubernetes.io set, so `kubectl get all -l
app.kubernetes.io/instance=<release>` finds everything a release made.
*/}}
{{- define "shimshift.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "shimshift.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The labels the Deployment selects its pods by and the metrics Service selects endpoints by. They must
never change between releases (a Deployment's selector is immutable), so nothing version-like goes in.
*/}}
{{- define "shimshift.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shimshift.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as: the created one, or the existing one named in values.
*/}}
{{- define "shimshift.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shimshift.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: a digest pins it and wins over the tag; the tag defaults to the chart appVersion.
*/}}
{{- define "shimshift.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The Secret holding the SSH private key: the existing one named in values, the one this chart creates
from ssh.privateKey.value, or "" when neither is given (NodeMigrations in Plan mode against the
testbed or a cluster without SSH need none).
*/}}
{{- define "shimshift.sshKeySecretName" -}}
{{- if .Values.ssh.privateKey.existingSecret }}
{{- .Values.ssh.privateKey.existingSecret }}
{{- else if .Values.ssh.privateKey.value }}
{{- printf "%s-ssh" (include "shimshift.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The Secret holding known_hosts, by the same rules as the SSH key.
*/}}
{{- define "shimshift.knownHostsSecretName" -}}
{{- if .Values.ssh.knownHosts.existingSecret }}
{{- .Values.ssh.knownHosts.existingSecret }}
{{- else if .Values.ssh.knownHosts.value }}
{{- printf "%s-known-hosts" (include "shimshift.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Every Secret the operator may read, for the Role's resourceNames: the SSH Secrets, the notification
URLs' Secret (notifications.urlSecret) and rbac.extraSecretNames. Returned as a JSON list so callers can `fromJsonArray` it.
*/}}
{{- define "shimshift.readableSecretNames" -}}
{{- $names := list }}
{{- with include "shimshift.sshKeySecretName" . }}{{ $names = append $names . }}{{ end }}
{{- with include "shimshift.knownHostsSecretName" . }}{{ $names = append $names . }}{{ end }}
{{- with .Values.notifications.urlSecret }}{{ $names = append $names . }}{{ end }}
{{- range .Values.rbac.extraSecretNames }}{{ $names = append $names . }}{{ end }}
{{- $names | uniq | toJson }}
{{- end }}

{{/*
Refuse value combinations that would deploy something unsafe, with a message that says what to change.
*/}}
{{- define "shimshift.checks" -}}
{{- if and .Values.ssh.privateKey.existingSecret .Values.ssh.privateKey.value }}
{{- fail "set ssh.privateKey.existingSecret or ssh.privateKey.value, not both" }}
{{- end }}
{{- if and .Values.ssh.knownHosts.existingSecret .Values.ssh.knownHosts.value }}
{{- fail "set ssh.knownHosts.existingSecret or ssh.knownHosts.value, not both" }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.healthPort)) }}
{{- fail "metrics.port and healthPort must differ: the operator serves /metrics and kopf's /healthz on separate ports" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) }}
{{- fail "replicaCount above 1 needs peering.enabled=true: without kopf peering every pod would act" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled=true (the ServiceMonitor scrapes the metrics Service)" }}
{{- end }}
{{- if and .Values.prometheusRule.enabled (not .Values.metrics.enabled) }}
{{- fail "prometheusRule.enabled needs metrics.enabled=true (the alerts read the operator's metrics)" }}
{{- end }}
{{- end }}
