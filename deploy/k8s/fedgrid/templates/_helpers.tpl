{{/*
Names, labels, images, environment and value checks shared by the templates.
A "component" is one of: gateway, model-store, cycle-manager, aggregator,
signaling, migrations, redis, postgresql, minio.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "fedgrid.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The resource name prefix: RELEASE-NAME, or RELEASE when it has the name. */}}
{{- define "fedgrid.fullname" -}}
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

{{/* chart-version for the helm.sh/chart label. */}}
{{- define "fedgrid.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "fedgrid.labels" -}}
helm.sh/chart: {{ include "fedgrid.chart" . }}
{{ include "fedgrid.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fedgrid
{{- end }}

{{/* Labels that select the release's pods. */}}
{{- define "fedgrid.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fedgrid.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Name of one component's resources; takes (dict "root" $ "component" NAME). */}}
{{- define "fedgrid.componentName" -}}
{{- printf "%s-%s" (include "fedgrid.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of one component's resources; takes (dict "root" $ "component" NAME). */}}
{{- define "fedgrid.componentLabels" -}}
{{ include "fedgrid.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels that select one component's pods; takes (dict "root" $ "component" NAME). */}}
{{- define "fedgrid.componentSelectorLabels" -}}
{{ include "fedgrid.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The ServiceAccount of the fedgrid pods. */}}
{{- define "fedgrid.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fedgrid.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* A fedgrid image; takes (dict "root" $ "component" NAME "values" SERVICE_VALUES). */}}
{{- define "fedgrid.image" -}}
{{- $image := .root.Values.image }}
{{- $repository := .values.image.repository }}
{{- if not $repository }}
{{- $repository = printf "%s%s" $image.repositoryPrefix .component }}
{{- if $image.registry }}
{{- $repository = printf "%s/%s" $image.registry $repository }}
{{- end }}
{{- end }}
{{- $tag := .values.image.tag | default $image.tag | default .root.Chart.AppVersion }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{/* Secret of the admin token and session key. */}}
{{- define "fedgrid.authSecretName" -}}
{{- default (include "fedgrid.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{/*
A generated secret value that survives upgrades: the one already stored in the
Secret when there is one, otherwise a new random string. Plain text out.
Takes (dict "root" $ "secret" SECRET_NAME "key" KEY "length" N).
*/}}
{{- define "fedgrid.keptRandom" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret }}
{{- $stored := dig "data" .key "" ($existing | default dict) }}
{{- if $stored }}
{{- $stored | b64dec }}
{{- else }}
{{- randAlphaNum (int .length) }}
{{- end }}
{{- end }}

{{/* Pod annotations: config checksum (so config changes roll pods) and scraping. */}}
{{- define "fedgrid.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
{{- if and .root.Values.metrics.podAnnotations .metricsPort }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .metricsPort | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod fields every fedgrid pod shares; takes (dict "root" $ "component" NAME
"values" SERVICE_VALUES), and optionally "serviceAccountName".
*/}}
{{- define "fedgrid.podCommon" -}}
serviceAccountName: {{ .serviceAccountName | default (include "fedgrid.serviceAccountName" .root) }}
automountServiceAccountToken: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "fedgrid.componentSelectorLabels" . | nindent 8 }}
volumes:
  - name: tmp
    emptyDir: {}
  - name: var
    emptyDir: {}
{{- end }}

{{/* Container fields every fedgrid container shares; takes (dict "root" $ "component" NAME "values" SERVICE_VALUES "secrets" LIST). */}}
{{- define "fedgrid.containerCommon" -}}
image: {{ include "fedgrid.image" . }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .root.Values.securityContext | nindent 2 }}
envFrom:
  - configMapRef:
      name: {{ include "fedgrid.fullname" .root }}
env:
  {{- include "fedgrid.secretEnv" . | trim | nindent 2 }}
  {{- with .values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: var
    mountPath: /var/lib/fedgrid
{{- end }}

{{/*
FEDGRID_* variables read from Secrets. .secrets names the ones a component
needs: auth, database, redis, broker, s3.
*/}}
{{- define "fedgrid.secretEnv" -}}
{{- $root := .root }}
{{- $fullname := include "fedgrid.fullname" $root }}
{{- if has "auth" .secrets }}
- name: FEDGRID_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "fedgrid.authSecretName" $root }}
      key: {{ $root.Values.auth.adminTokenKey }}
- name: FEDGRID_SESSION_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "fedgrid.authSecretName" $root }}
      key: {{ $root.Values.auth.sessionSecretKey }}
{{- end }}
{{- if has "database" .secrets }}
- name: FEDGRID_DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- if $root.Values.postgresql.enabled }}
      name: {{ $fullname }}-postgresql
      key: database-url
      {{- else }}
      name: {{ $root.Values.postgresql.external.existingSecret }}
      key: {{ $root.Values.postgresql.external.urlKey }}
      {{- end }}
{{- end }}
{{- if or (has "redis" .secrets) (has "broker" .secrets) }}
{{- include "fedgrid.redisUrlEnv" (dict "root" $root "name" "FEDGRID_REDIS_URL") }}
{{- end }}
{{- if has "broker" .secrets }}
{{- if $root.Values.broker.existingSecret }}
- name: FEDGRID_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.broker.existingSecret }}
      key: {{ $root.Values.broker.urlKey }}
{{- else }}
{{- include "fedgrid.redisUrlEnv" (dict "root" $root "name" "FEDGRID_BROKER_URL") }}
{{- end }}
{{- end }}
{{- if has "s3" .secrets }}
- name: FEDGRID_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      {{- if $root.Values.minio.enabled }}
      name: {{ $fullname }}-minio
      key: access-key
      {{- else }}
      name: {{ $root.Values.minio.external.existingSecret }}
      key: {{ $root.Values.minio.external.accessKeyKey }}
      {{- end }}
- name: FEDGRID_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      {{- if $root.Values.minio.enabled }}
      name: {{ $fullname }}-minio
      key: secret-key
      {{- else }}
      name: {{ $root.Values.minio.external.existingSecret }}
      key: {{ $root.Values.minio.external.secretKeyKey }}
      {{- end }}
{{- end }}
{{- end }}

{{/* One variable holding the Redis URL; takes (dict "root" $ "name" VARIABLE). */}}
{{- define "fedgrid.redisUrlEnv" -}}
{{- $redis := .root.Values.redis }}
- name: {{ .name }}
{{- if $redis.enabled }}
  valueFrom:
    secretKeyRef:
      name: {{ include "fedgrid.fullname" .root }}-redis
      key: redis-url
{{- else if $redis.external.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ $redis.external.existingSecret }}
      key: {{ $redis.external.urlKey }}
{{- else }}
  value: {{ $redis.external.url | quote }}
{{- end }}
{{- end }}

{{/* The init container that migrates the bundled database on first install. */}}
{{- define "fedgrid.migrateInitContainer" -}}
{{- if and .root.Values.migrations.enabled .root.Values.postgresql.enabled }}
initContainers:
  - name: migrate
    {{- include "fedgrid.containerCommon" (merge (dict "secrets" (list "database")) .) | nindent 4 }}
    command: ["fedgrid", "db", "migrate"]
    resources:
      {{- toYaml .root.Values.migrations.resources | nindent 6 }}
{{- end }}
{{- end }}

{{/* Stop rendering with a message a person can act on when values contradict. */}}
{{- define "fedgrid.validate" -}}
{{- $v := .Values }}
{{- if and (not $v.postgresql.enabled) (not $v.postgresql.external.existingSecret) }}
{{- fail "postgresql.external.existingSecret is required when postgresql.enabled=false: name a Secret whose key postgresql.external.urlKey holds postgresql://USER:PASSWORD@HOST:5432/DB" }}
{{- end }}
{{- if and (not $v.redis.enabled) (not $v.redis.external.existingSecret) (not $v.redis.external.url) }}
{{- fail "redis.external.url or redis.external.existingSecret is required when redis.enabled=false: give the URL of your Redis (redis://HOST:6379/0), or a Secret holding it when it has a password" }}
{{- end }}
{{- if and $v.redis.external.existingSecret $v.redis.external.url }}
{{- fail "set only one of redis.external.url and redis.external.existingSecret" }}
{{- end }}
{{- if and (not $v.minio.enabled) (not $v.minio.external.endpoint) }}
{{- fail "minio.external.endpoint is required when minio.enabled=false: give the HOST:PORT of your S3-compatible store" }}
{{- end }}
{{- if and (not $v.minio.enabled) (not $v.minio.external.existingSecret) }}
{{- fail "minio.external.existingSecret is required when minio.enabled=false: name a Secret holding the S3 access key and secret key" }}
{{- end }}
{{- if and (not $v.minio.enabled) (contains "://" $v.minio.external.endpoint) }}
{{- fail "minio.external.endpoint takes HOST:PORT without a scheme; use minio.external.secure for HTTPS" }}
{{- end }}
{{- if and $v.ingress.tls.secretName (not $v.ingress.host) }}
{{- fail "ingress.host is required when ingress.tls.secretName is set: the certificate is served for that host" }}
{{- end }}
{{- if and $v.aggregator.autoscaling.enabled (gt (int $v.aggregator.autoscaling.minReplicas) (int $v.aggregator.autoscaling.maxReplicas)) }}
{{- fail "aggregator.autoscaling.minReplicas must not exceed aggregator.autoscaling.maxReplicas" }}
{{- end }}
{{- $secretSettings := list "ADMIN_TOKEN" "SESSION_SECRET" "DATABASE_URL" "REDIS_URL" "BROKER_URL" "S3_ACCESS_KEY" "S3_SECRET_KEY" }}
{{- range $name, $_ := $v.config.extra }}
{{- if has (upper $name) $secretSettings }}
{{- fail (printf "config.extra.%s would put a secret in the ConfigMap; use the chart's Secret settings (auth, postgresql, redis, broker, minio) instead" $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A component's PodDisruptionBudget; takes (dict "root" $ "component" NAME "values" SERVICE_VALUES). */}}
{{- define "fedgrid.podDisruptionBudget" -}}
{{- if .values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "fedgrid.componentName" . }}
  labels:
    {{- include "fedgrid.componentLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "fedgrid.componentSelectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
