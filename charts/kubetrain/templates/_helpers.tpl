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

{{/* The operator's Deployment, ServiceAccount and RBAC objects. */}}
{{- define "kubetrain.operatorName" -}}
{{- printf "%s-operator" (include "kubetrain.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubetrain.serviceAccountName" -}}
{{- $name := .Values.serviceAccount.name | default (include "kubetrain.operatorName" .) -}}
{{- if hasSuffix "-trainer" $name -}}
{{- fail "serviceAccount.name must not end in -trainer (the admission policy would treat the operator as a trainer pod)" -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "kubetrain.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
The operator's own rules: exactly the API calls of operator/kubetrain_operator/kube.py and its
kopf watches, the same whether granted by a ClusterRole or by a Role per watched namespace.
operator/manifests/operator-rbac.yaml states the same table; tests/support/chart_rbac.py
checks the chart against both.
*/}}
{{- define "kubetrain.rules.application" -}}
# Jobs: kopf lists and watches them (event handlers only: no finalizer, nothing written on
# the object, so no patch); the reconciler reads one before each pass (get) and deletes it
# after ttlSecondsAfterFinished (delete).
- apiGroups: ["kubetrain.io"]
  resources: ["trainingjobs"]
  verbs: ["get", "list", "watch", "delete"]
# Phase, conditions and replica counts (merge patch). get+patch is also what each trainer's
# Role grants, and RBAC lets the operator create that Role only if it holds both itself.
- apiGroups: ["kubetrain.io"]
  resources: ["trainingjobs/status"]
  verbs: ["get", "patch"]
# Children carry ownerReferences with blockOwnerDeletion, which the
# OwnerReferencesPermissionEnforcement admission plugin allows only to who may update this.
- apiGroups: ["kubetrain.io"]
  resources: ["trainingjobs/finalizers"]
  verbs: ["update"]
# Worker pods: kopf watches them by label; the reconciler lists them by label, creates and
# updates them by server-side apply (create + patch) and deletes them by UID on a group
# restart, suspend or failure. Never read one by one (no get).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Per-job children: the headless Service (worker DNS names), the resolved-spec ConfigMap and
# the trainer's ServiceAccount. kopf lists and watches them through the label selector
# kubetrain.io/job-name, so one edited or deleted by hand is put back by the next reconcile;
# the reconciler server-side applies them (create + patch) and never reads one by one (no
# get) nor deletes them (garbage collection follows the owner reference).
- apiGroups: [""]
  resources: ["services", "configmaps", "serviceaccounts"]
  verbs: ["list", "watch", "create", "patch"]
# The trainer's Role and RoleBinding (its own job's status subresource, resourceNames),
# watched and server-side applied like the other children.
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["list", "watch", "create", "patch"]
# Events on jobs (phase transitions, restarts, failures), posted by the reconciler; kopf's
# own event posting is switched off (settings.posting.enabled = False).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Kueue admission of jobs with a queueName (docs/cluster.md, "Kueue"): kopf watches the jobs'
# Workloads by label; the reconciler reads one (get), creates and updates it by server-side
# apply (create + patch), and patches its status to give an evicted job's quota back once its
# pods are gone and to mark it Finished. Unused where Kueue is not installed.
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  verbs: ["get", "list", "watch", "create", "patch"]
# (Workload status: the quota of an evicted job given back, Finished at the end.)
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads/status"]
  verbs: ["patch"]
{{- end -}}
