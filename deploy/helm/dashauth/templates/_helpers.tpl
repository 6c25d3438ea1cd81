{{/* Names and labels. */}}
{{- define "dashauth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dashauth.fullname" -}}
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

{{- define "dashauth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dashauth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dashauth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "dashauth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "dashauth.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "true" when WorkOS AuthKit is the sign-in flow; the guide writes the value as a string, YAML may make it a bool. */}}
{{- define "dashauth.workos" -}}
{{- $v := toString .Values.config.isWorkosIntegrated }}
{{- if not (has $v (list "true" "false" "")) }}
{{- fail (printf "config.isWorkosIntegrated is %q: it must be \"true\" or \"false\"" $v) }}
{{- end }}
{{- if eq $v "true" }}true{{ end }}
{{- end }}

{{/* "true" when the pods read a members file: email+code sign-in, or a list or ConfigMap given anyway. */}}
{{- define "dashauth.hasMembers" -}}
{{- if or .Values.members.existingConfigMap .Values.members.list }}true{{ end }}
{{- end }}

{{- define "dashauth.membersConfigMap" -}}
{{- .Values.members.existingConfigMap | default (printf "%s-members" (include "dashauth.fullname" .)) }}
{{- end }}

{{- define "dashauth.membersKey" -}}
{{- if .Values.members.existingConfigMap }}{{ .Values.members.existingConfigMapKey }}{{ else }}members.json{{ end }}
{{- end }}

{{/* The members file the chart writes from members.list (contract, "Members file"). */}}
{{- define "dashauth.membersJSON" -}}
{{- dict "members" .Values.members.list | toJson }}
{{- end }}

{{/* What the pods' checksum/members annotation is taken of: the chart's members file, or the managed ConfigMap's data
as the cluster holds it now (empty under helm template). */}}
{{- define "dashauth.membersChecksum" -}}
{{- if .Values.members.existingConfigMap }}
{{- $cm := lookup "v1" "ConfigMap" .Release.Namespace .Values.members.existingConfigMap }}
{{- (get (default dict $cm) "data") | default dict | toJson | sha256sum }}
{{- else }}
{{- include "dashauth.membersJSON" . | sha256sum }}
{{- end }}
{{- end }}

{{/* Every refusal helm template can make before the pods would refuse to start, each with what to set. */}}
{{- define "dashauth.validate" -}}
{{- $workos := include "dashauth.workos" . }}
{{- if not .Values.config.dashboardUrl }}
{{- fail "config.dashboardUrl is required: the dashboard's origin, e.g. https://app.yourdomain.com (DASHBOARD_URL)" }}
{{- end }}
{{- if not .Values.config.apiUrl }}
{{- fail "config.apiUrl is required: this service's public origin, e.g. https://api.yourdomain.com (API_URL)" }}
{{- end }}
{{- if not .Values.secret.existingKubeSecret }}
{{- fail "secret.existingKubeSecret is required: the Secret with the JWT secret (key secret.jwtSecretKey) and the other secret values" }}
{{- end }}
{{- if not (and .Values.config.smtp.host .Values.config.smtp.from) }}
{{- fail "config.smtp.host and config.smtp.from are required: login codes are sent by mail (SMTP_HOST, SMTP_FROM)" }}
{{- end }}
{{- if and $workos (not (and .Values.config.workosClientId .Values.config.workosSigninBaseUrl)) }}
{{- fail "config.isWorkosIntegrated is \"true\": config.workosClientId and config.workosSigninBaseUrl are required" }}
{{- end }}
{{- if and (not $workos) (not (include "dashauth.hasMembers" .)) }}
{{- fail "email+code sign-in needs members.list or members.existingConfigMap: without a members file nobody may sign in" }}
{{- end }}
{{- $replicas := list "replicaCount" (int .Values.replicaCount) }}
{{- if .Values.autoscaling.enabled }}{{ $replicas = list "autoscaling.maxReplicas" (int .Values.autoscaling.maxReplicas) }}{{ end }}
{{- if and (gt (last $replicas) 1) (not .Values.config.redis.enabled) }}
{{- fail (printf "%s is %d, but more than one replica needs Redis: codes, rate limits, sessions and webhook deduplication must be shared. Set config.redis.enabled=true and put REDIS_URL in the Secret under the key secret.redisUrlKey (%q), or run one replica" (first $replicas) (last $replicas) .Values.secret.redisUrlKey) }}
{{- end }}
{{- if lt (int .Values.terminationGracePeriodSeconds) 45 }}
{{- fail "terminationGracePeriodSeconds must be at least 45: shutdown waits for webhook deliveries, which may take ~33 s" }}
{{- end }}
{{- end }}

{{- define "dashauth.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end }}

{{/* The contract's environment variables from the values; the Deployment and the test pod share it. */}}
{{- define "dashauth.env" -}}
{{- $c := .Values.config }}
{{- $s := .Values.secret.existingKubeSecret -}}
- name: LISTEN_ADDR
  value: "0.0.0.0:8080"
- name: DASHBOARD_URL
  value: {{ $c.dashboardUrl | quote }}
- name: API_URL
  value: {{ $c.apiUrl | quote }}
{{- with $c.allowedRedirectUrls }}
- name: ALLOWED_REDIRECT_URLS
  value: {{ . | quote }}
{{- end }}
- name: IS_WORKOS_INTEGRATED
  value: {{ include "dashauth.workos" . | default "false" | quote }}
{{- if include "dashauth.workos" . }}
- name: WORKOS_CLIENT_ID
  value: {{ $c.workosClientId | quote }}
- name: WORKOS_SIGNIN_BASE_URL
  value: {{ $c.workosSigninBaseUrl | quote }}
{{- with $c.workosApiBaseUrl }}
- name: WORKOS_API_BASE_URL
  value: {{ . | quote }}
{{- end }}
{{ include "dashauth.secretEnv" (dict "name" "WORKOS_API_KEY" "secret" $s "key" .Values.secret.workosApiKeyKey) }}
{{ include "dashauth.secretEnv" (dict "name" "WORKOS_WEBHOOK_SECRET" "secret" $s "key" .Values.secret.workosWebhookSecretKey) }}
{{- end }}
{{ include "dashauth.secretEnv" (dict "name" "JWT_SECRET" "secret" $s "key" .Values.secret.jwtSecretKey) }}
{{- with .Values.secret.jwtSecretPreviousKey }}
{{ include "dashauth.secretEnv" (dict "name" "JWT_SECRET_PREVIOUS" "secret" $s "key" .) }}
{{- end }}
- name: SMTP_HOST
  value: {{ $c.smtp.host | quote }}
{{- with $c.smtp.port }}
- name: SMTP_PORT
  value: {{ . | toString | quote }}
{{- end }}
- name: SMTP_FROM
  value: {{ $c.smtp.from | quote }}
{{- with $c.smtp.tls }}
- name: SMTP_TLS
  value: {{ . | quote }}
{{- end }}
{{- with $c.smtp.username }}
- name: SMTP_USERNAME
  value: {{ . | quote }}
{{ include "dashauth.secretEnv" (dict "name" "SMTP_PASSWORD" "secret" $s "key" $.Values.secret.smtpPasswordKey) }}
{{- end }}
{{- if $c.redis.enabled }}
{{ include "dashauth.secretEnv" (dict "name" "REDIS_URL" "secret" $s "key" .Values.secret.redisUrlKey) }}
{{- end }}
{{- with $c.redis.keyPrefix }}
- name: REDIS_KEY_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- if include "dashauth.hasMembers" . }}
- name: MEMBERS_FILE
  value: {{ printf "/etc/dashauth/members/%s" (include "dashauth.membersKey" .) | quote }}
{{- end }}
{{- range $name, $value := dict "COOKIE_DOMAIN" $c.cookieDomain "TRUSTED_PROXIES" $c.trustedProxies "ACCESS_TOKEN_TTL" $c.accessTokenTtl "REFRESH_TOKEN_TTL" $c.refreshTokenTtl "REFRESH_REUSE_INTERVAL" $c.refreshReuseInterval "SESSION_MAX_AGE" $c.sessionMaxAge "LOG_LEVEL" $c.logLevel }}
{{- with $value }}
- name: {{ $name }}
  value: {{ . | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The members file, mounted read-only where MEMBERS_FILE points. */}}
{{- define "dashauth.volumeMounts" -}}
{{- if include "dashauth.hasMembers" . -}}
- name: members
  mountPath: /etc/dashauth/members
  readOnly: true
{{- end }}
{{- end }}

{{- define "dashauth.volumes" -}}
{{- if include "dashauth.hasMembers" . -}}
- name: members
  configMap:
    name: {{ include "dashauth.membersConfigMap" . }}
    items:
      - key: {{ include "dashauth.membersKey" . }}
        path: {{ include "dashauth.membersKey" . }}
{{- end }}
{{- end }}

{{/* The Pod Security Standard "restricted": the image's non-root user, no privileges, nothing writable. */}}
{{- define "dashauth.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "dashauth.securityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
{{- end }}
