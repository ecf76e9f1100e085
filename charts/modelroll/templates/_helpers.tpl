{{/* Names are fixed: the ClusterRole and the CRD are cluster-wide, so one release per cluster. */}}
{{- define "modelroll.name" -}}modelroll-operator{{- end -}}

{{- define "modelroll.selectorLabels" -}}
app.kubernetes.io/name: modelroll
app.kubernetes.io/component: operator
{{- end -}}

{{- define "modelroll.labels" -}}
{{ include "modelroll.selectorLabels" . }}
{{ include "modelroll.releaseLabels" . }}
{{- end -}}

{{/* Helm's bookkeeping labels only (the tenants' ClusterRoles are not the operator's). */}}
{{- define "modelroll.releaseLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "modelroll.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "modelroll.runtimeImage" -}}
{{ .Values.runtimeImage.repository }}:{{ .Values.runtimeImage.tag | default .Chart.AppVersion }}
{{- end -}}
