{{/* Names: <release>-authgate, or the release's name when it already says authgate. */}}
{{- define "authgate.fullname" -}}
{{- if contains "authgate" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-authgate" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* One component's name: <fullname>-<component>. */}}
{{- define "authgate.name" -}}
{{- printf "%s-%s" (include "authgate.fullname" .root) .component -}}
{{- end -}}

{{- define "authgate.selectorLabels" -}}
app.kubernetes.io/name: authgate
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "authgate.labels" -}}
{{ include "authgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "authgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The issuer's Service URL inside the cluster. */}}
{{- define "authgate.issuerUrl" -}}
http://{{ include "authgate.name" (dict "root" . "component" "issuer") }}:{{ .Values.issuer.port }}
{{- end -}}

{{/* An environment variable from a URL value, or from the user's Secret when named. */}}
{{- define "authgate.urlEnv" -}}
- name: {{ .name }}
{{- if .conf.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .conf.existingSecret }}
      key: {{ .conf.existingSecretKey }}
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ include "authgate.name" (dict "root" .root "component" "connections") }}
      key: {{ .key }}
{{- end }}
{{- end -}}

{{/* The pod and container security settings every authgate container runs with: the
     image's user (uid 10001, Dockerfile), nothing else. */}}
{{- define "authgate.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "authgate.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}

{{/* A PodDisruptionBudget for a component with more than one replica. */}}
{{- define "authgate.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "authgate.name" . }}
  labels:
    {{- include "authgate.labels" . | nindent 4 }}
spec:
  minAvailable: {{ .budget.minAvailable }}
  selector:
    matchLabels:
      {{- include "authgate.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* A NetworkPolicy peer: the pods of one component of this release. */}}
{{- define "authgate.peer" -}}
- podSelector:
    matchLabels:
      {{- include "authgate.selectorLabels" . | nindent 6 }}
{{- end -}}
