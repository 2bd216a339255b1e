{{- define "csu.fullname" -}}
{{- printf "%s-csu" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "csu.labels" -}}
app.kubernetes.io/name: csu
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "csu.httpPort" -}}
{{- if eq . "gateway" -}}8080{{- else -}}8180{{- end -}}
{{- end -}}
