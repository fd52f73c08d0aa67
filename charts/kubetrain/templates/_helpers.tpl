{{/* Names and labels shared by every template. */}}

{{- define "kubetrain.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubetrain.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubetrain.labels" -}}
{{ include "kubetrain.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubetrain.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "kubetrain.fullname" .) -}}
{{- end -}}

{{- define "kubetrain.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
The operator's own rules (its reconcile loop, operator/kubetrain_operator/kube.py), the same
whether they are granted by a ClusterRole or by a Role per watched namespace.
tests/unit/chart/test_rbac.py holds the expected table: change both together.
*/}}
{{- define "kubetrain.rules.application" -}}
# Watch TrainingJobs and patch their metadata (kopf's handled-state annotations).
- apiGroups: ["kubetrain.io"]
  resources: ["trainingjobs"]
  verbs: ["get", "list", "watch", "patch"]
# Write phase, conditions and replica counts. The operator must also hold what it grants
# each trainer's Role (get/patch on trainingjobs/status): RBAC forbids granting more than one has.
- apiGroups: ["kubetrain.io"]
  resources: ["trainingjobs/status"]
  verbs: ["get", "patch"]
# Worker pods: created and updated by server-side apply (patch; create for the first apply),
# observed through a watch, deleted on a group restart, suspend or failure.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
# Per-job children: the headless Service (worker DNS names), the resolved-spec ConfigMap,
# and the trainer's ServiceAccount (its token may patch only its own job's progress).
- apiGroups: [""]
  resources: ["services", "configmaps", "serviceaccounts"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
# The trainer's Role and RoleBinding (resourceNames = its own job, status subresource only).
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
{{- end -}}

{{/* kopf's own namespaced needs. */}}
{{- define "kubetrain.rules.kopfNamespaced" -}}
# kopf: Kubernetes Events on the jobs it handles (phase transitions, handler errors).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
