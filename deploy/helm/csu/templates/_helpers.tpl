{{/* Names and labels ------------------------------------------------------------------------ */}}

{{- define "csu.fullname" -}}
{{- printf "%s-csu" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "csu.labels" -}}
app.kubernetes.io/name: csu
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selects every pod of the release (services, NATS, migration job): the default-deny policy's target. */}}
{{- define "csu.selectorLabels" -}}
app.kubernetes.io/name: csu
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The five platform services, in a fixed order. */}}
{{- define "csu.serviceNames" -}}
ingest masking archive requisition gateway
{{- end -}}

{{- define "csu.httpPort" -}}
{{- if eq . "gateway" -}}8080{{- else -}}8180{{- end -}}
{{- end -}}

{{- define "csu.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository ($image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The port of a URL (arguments: list URL defaultPort). */}}
{{- define "csu.urlPort" -}}
{{- $url := urlParse (index . 0) -}}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" -}}
{{- if $port -}}{{ $port }}{{- else if eq $url.scheme "https" -}}443{{- else if eq $url.scheme "http" -}}80{{- else -}}{{ index . 1 }}{{- end -}}
{{- end -}}

{{- define "csu.natsUrl" -}}
{{- if .Values.nats.external.url -}}
{{- .Values.nats.external.url -}}
{{- else -}}
{{- printf "nats://%s-nats.%s.svc.%s:4222" (include "csu.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- end -}}

{{- define "csu.natsPort" -}}
{{- if .Values.nats.external.url -}}
{{- .Values.nats.external.networkPolicy.port | default (include "csu.urlPort" (list (first (splitList "," .Values.nats.external.url)) "4222")) -}}
{{- else -}}4222{{- end -}}
{{- end -}}

{{/* Name of the JetStream stream holding <prefix>.events.> (services/common/subjects.py). */}}
{{- define "csu.eventsStream" -}}
{{- printf "%s_EVENTS" (.Values.nats.prefix | upper | replace "-" "_") -}}
{{- end -}}

{{/* The masked-frame buffer the archive records from (services/common/bus.py ensure_masked_stream). */}}
{{- define "csu.maskedStream" -}}
{{- printf "%s_MASKED" (.Values.nats.prefix | upper | replace "-" "_") -}}
{{- end -}}

{{/* Pod Security "restricted" ------------------------------------------------------------- */}}

{{- define "csu.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "csu.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "csu.topologySpread" -}}
{{- $root := index . 0 -}}
- maxSkew: {{ $root.Values.topologySpread.maxSkew }}
  topologyKey: {{ $root.Values.topologySpread.topologyKey }}
  whenUnsatisfiable: {{ $root.Values.topologySpread.whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "csu.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Checks the schema cannot express, and the legal ones again (schema validation can be skipped). */}}
{{- define "csu.validate" -}}
{{- if gt (int .Values.retentionDays) 30 -}}
{{- fail (printf "retentionDays=%v exceeds the legal maximum of 30 days" .Values.retentionDays) -}}
{{- end -}}
{{- if lt (int .Values.retentionDays) 1 -}}
{{- fail (printf "retentionDays=%v must be at least 1" .Values.retentionDays) -}}
{{- end -}}
{{- $_ := required "secrets.signingKey.existingSecret is required: the name of an existing Secret holding the Ed25519 signing key (PEM); the platform never uses a built-in key" .Values.secrets.signingKey.existingSecret -}}
{{- $_ := required "secrets.secretsKey.existingSecret is required: the name of an existing Secret holding the key that encrypts stored secrets" .Values.secrets.secretsKey.existingSecret -}}
{{- $_ := required "database.existingSecret is required: the name of an existing Secret holding the database URL" .Values.database.existingSecret -}}
{{- $_ := required "objectStore.existingSecret is required: the name of an existing Secret holding the object store keys" .Values.objectStore.existingSecret -}}
{{- $_ := required "nats.auth.existingSecret is required: the name of an existing Secret holding the services' NATS passwords" .Values.nats.auth.existingSecret -}}
{{- range $i, $pem := .Values.secrets.signingKey.retiredPublicKeys -}}
{{- if not (hasPrefix "-----BEGIN PUBLIC KEY-----" (trim $pem)) -}}
{{- fail (printf "secrets.signingKey.retiredPublicKeys[%d] is not a public key (PEM \"-----BEGIN PUBLIC KEY-----\"): only the public half of a retired key belongs in values" $i) -}}
{{- end -}}
{{- end -}}
{{- if .Values.federation.enabled -}}
{{- $_ := required "federation.caSecret is required when federation.enabled is true: the name of an existing Secret holding the partners' CA certificate" .Values.federation.caSecret -}}
{{- end -}}
{{- range $name := splitList " " (include "csu.serviceNames" .) -}}
{{- $svc := index $.Values.services $name | default dict -}}
{{- if lt (int $svc.replicas) 0 -}}
{{- fail (printf "services.%s.replicas=%v must not be negative" $name $svc.replicas) -}}
{{- end -}}
{{- if and $svc.autoscaling $svc.autoscaling.enabled (gt (int $svc.autoscaling.minReplicas) (int $svc.autoscaling.maxReplicas)) -}}
{{- fail (printf "services.%s.autoscaling.minReplicas=%v is above maxReplicas=%v" $name $svc.autoscaling.minReplicas $svc.autoscaling.maxReplicas) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.metrics.prometheusRule.enabled (not .Values.metrics.serviceMonitor.enabled) -}}
{{- fail "metrics.prometheusRule.enabled needs metrics.serviceMonitor.enabled: its alerts read what the ServiceMonitor scrapes (without it every service would look down)" -}}
{{- end -}}
{{- range $key, $_ := .Values.env -}}
{{- if has $key (list "CSU_RETENTION_DAYS" "CSU_NATS_URL" "CSU_NATS_USER" "CSU_NATS_PASSWORD" "CSU_NATS_PREFIX" "CSU_DATABASE_URL" "CSU_S3_ACCESS_KEY" "CSU_S3_SECRET_KEY" "CSU_SIGNING_KEY_FILE" "CSU_SECRETS_KEY_FILE" "CSU_FEDERATION_CA_FILE" "CSU_SMTP_URL" "CSU_BOOTSTRAP_ADMIN_PASSWORD" "CSU_DB_AUTO_MIGRATE" "CSU_MASKED_BUFFER_S" "CSU_MASKED_BUFFER_MAX_BYTES") -}}
{{- fail (printf "env.%s is managed by the chart: set it through its own value (README)" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Environment of a service container (argument: dict root name) ----------------------------- */}}
{{- define "csu.serviceEnv" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $v := $root.Values -}}
- name: CSU_NATS_USER
  value: {{ $name }}
- name: CSU_NATS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $v.nats.auth.existingSecret }}, key: {{ printf "%s-password" $name }}}
{{- if has $name $v.database.clients }}
- name: CSU_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $v.database.existingSecret }}, key: {{ $v.database.key }}}
{{- end }}
{{- if has $name $v.objectStore.clients }}
{{- $storeSecret := get ($v.objectStore.clientSecrets | default dict) $name | default $v.objectStore.existingSecret }}
- name: CSU_STORE_BACKEND
  value: s3
- name: CSU_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ $storeSecret }}, key: {{ $v.objectStore.accessKeyKey }}}
- name: CSU_S3_SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ $storeSecret }}, key: {{ $v.objectStore.secretKeyKey }}}
{{- end }}
{{- if has $name $v.secrets.signingKey.consumers }}
- name: CSU_SIGNING_KEY_FILE
  value: {{ printf "/secrets/signing-key/%s" $v.secrets.signingKey.key }}
{{- end }}
{{- if has $name $v.secrets.secretsKey.consumers }}
- name: CSU_SECRETS_KEY_FILE
  value: {{ printf "/secrets/secrets-key/%s" $v.secrets.secretsKey.key }}
{{- end }}
{{- if and $v.smtp.existingSecret (has $name $v.smtp.consumers) }}
- name: CSU_SMTP_URL
  valueFrom:
    secretKeyRef: {name: {{ $v.smtp.existingSecret }}, key: {{ $v.smtp.key }}}
{{- end }}
{{- if eq $name "gateway" }}
{{- if $v.federation.enabled }}
- name: CSU_FEDERATION_CA_FILE
  value: {{ printf "/secrets/federation-ca/%s" $v.federation.caKey }}
{{- end }}
{{- if $v.gateway.bootstrapAdmin.existingSecret }}
- name: CSU_BOOTSTRAP_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $v.gateway.bootstrapAdmin.existingSecret }}, key: {{ $v.gateway.bootstrapAdmin.key }}, optional: true}
{{- end }}
{{- end }}
{{- if eq $name "ingest" }}
{{- /* Leases and statuses name the replica: the pod name is unique and readable. */}}
- name: CSU_INGEST_REPLICA_ID
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
{{- end }}
{{- if $v.otel.endpoint }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "csu-%s" $name }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "service.namespace=csu,deployment.environment=%s" $root.Release.Namespace | quote }}
{{- end }}
{{- end -}}

{{/* The file name of a retired public key (argument: its PEM): stable across renders. */}}
{{- define "csu.retiredKeyName" -}}
{{- printf "%s.pub.pem" (sha256sum (trim .) | trunc 16) -}}
{{- end -}}

{{/* Secret files of a service: volumes (argument: dict root name). */}}
{{- define "csu.secretVolumes" -}}
{{- $v := .root.Values -}}
{{- $name := .name -}}
{{- if has $name $v.secrets.signingKey.consumers }}
{{- $signing := $v.secrets.signingKey }}
{{- /* The retired public keys sit next to the key file, in <key>.retired/, where the services'
keyring looks for them (services/common/signing.py): one volume projecting both. */}}
- name: signing-key
  projected:
    defaultMode: 0440
    sources:
      - secret:
          name: {{ $signing.existingSecret }}
          items: [{key: {{ $signing.key }}, path: {{ $signing.key }}}]
      {{- with $signing.retiredPublicKeys }}
      - configMap:
          name: {{ include "csu.fullname" $.root }}-retired-signing-keys
          items:
            {{- range . }}
            - {key: {{ include "csu.retiredKeyName" . }}, path: {{ printf "%s.retired/%s" $signing.key (include "csu.retiredKeyName" .) }}}
            {{- end }}
      {{- end }}
{{- end }}
{{- if has $name $v.secrets.secretsKey.consumers }}
- name: secrets-key
  secret:
    secretName: {{ $v.secrets.secretsKey.existingSecret }}
    defaultMode: 0440
    items: [{key: {{ $v.secrets.secretsKey.key }}, path: {{ $v.secrets.secretsKey.key }}}]
{{- end }}
{{- if and (eq $name "gateway") $v.federation.enabled }}
- name: federation-ca
  secret:
    secretName: {{ $v.federation.caSecret }}
    defaultMode: 0440
    items: [{key: {{ $v.federation.caKey }}, path: {{ $v.federation.caKey }}}]
{{- end }}
{{- end -}}

{{- define "csu.secretMounts" -}}
{{- $v := .root.Values -}}
{{- $name := .name -}}
{{- if has $name $v.secrets.signingKey.consumers }}
- {name: signing-key, mountPath: /secrets/signing-key, readOnly: true}
{{- end }}
{{- if has $name $v.secrets.secretsKey.consumers }}
- {name: secrets-key, mountPath: /secrets/secrets-key, readOnly: true}
{{- end }}
{{- if and (eq $name "gateway") $v.federation.enabled }}
- {name: federation-ca, mountPath: /secrets/federation-ca, readOnly: true}
{{- end }}
{{- end -}}

{{/* NATS users and permissions: the privacy boundary ---------------------------------------- */}}
{{- /*
One user per service, in one account. Raw frames: only ingest publishes them, only masking
subscribes; masked frames: only masking publishes them, archive and gateway read them. Explicit
denies make that hold whatever else is allowed (NATS applies deny before allow), and none of it
is configurable. Everything else is an allow-list: the events, KV and the JetStream API for all,
each service's own subjects (nats.permissions.<service>). Creating or updating a JetStream stream
is limited to named streams: a user free to create any stream could capture raw frames into it
and read them back through a consumer. "{prefix}" in nats.permissions stands for nats.prefix.
Returns JSON: {"<service>": {"publish": {"allow": [...], "deny": [...]}, "subscribe": {...}, "allow_responses": true}}.
*/}}
{{- define "csu.natsPermissions" -}}
{{- $p := .Values.nats.prefix -}}
{{- $raw := printf "%s.raw.>" $p -}}
{{- $masked := printf "%s.masked.>" $p -}}
{{- $events := printf "%s.events.>" $p -}}
{{- $eventsStream := include "csu.eventsStream" . -}}
{{- $common := list $events "$JS.API.INFO" "$JS.API.STREAM.INFO.*" "$JS.API.STREAM.NAMES" "$JS.API.STREAM.LIST" "$JS.API.STREAM.MSG.GET.*" "$JS.API.DIRECT.GET.>" "$JS.API.CONSUMER.>" "$JS.ACK.>" "$JS.FC.>" "$KV.>" -}}
{{- $result := dict -}}
{{- range $name := splitList " " (include "csu.serviceNames" .) -}}
{{- $own := index $.Values.nats.permissions $name | default dict -}}
{{- $pubAllow := $common -}}
{{- range $stream := prepend ($own.streams | default list) $eventsStream -}}
{{- $stream = replace "{prefix}" $p $stream -}}
{{- $pubAllow = concat $pubAllow (list (printf "$JS.API.STREAM.CREATE.%s" $stream) (printf "$JS.API.STREAM.UPDATE.%s" $stream)) -}}
{{- end -}}
{{- range $subject := $own.publish | default list -}}
{{- $pubAllow = append $pubAllow (replace "{prefix}" $p $subject) -}}
{{- end -}}
{{- $subAllow := list "_INBOX.>" $events -}}
{{- range $subject := $own.subscribe | default list -}}
{{- $subAllow = append $subAllow (replace "{prefix}" $p $subject) -}}
{{- end -}}
{{- $pubDeny := list -}}
{{- $subDeny := list -}}
{{- if eq $name "ingest" -}}
{{- $pubAllow = append $pubAllow $raw -}}
{{- else -}}
{{- $pubDeny = append $pubDeny $raw -}}
{{- end -}}
{{- if eq $name "masking" -}}
{{- $subAllow = append $subAllow $raw -}}
{{- $pubAllow = append $pubAllow $masked -}}
{{- /* Only masking defines the masked-frame buffer: a service that could change its subjects could
make it capture raw frames and read them through a consumer. */}}
{{- $maskedStream := include "csu.maskedStream" $ -}}
{{- $pubAllow = concat $pubAllow (list (printf "$JS.API.STREAM.CREATE.%s" $maskedStream) (printf "$JS.API.STREAM.UPDATE.%s" $maskedStream)) -}}
{{- else -}}
{{- $subDeny = append $subDeny $raw -}}
{{- $pubDeny = append $pubDeny $masked -}}
{{- end -}}
{{- if has $name (list "archive" "gateway") -}}
{{- $subAllow = append $subAllow $masked -}}
{{- end -}}
{{- /* allow_responses: answering a request (e.g. a PTZ call forwarded to the replica holding the camera). */}}
{{- $_ := set $result $name (dict "publish" (dict "allow" (uniq $pubAllow) "deny" $pubDeny) "subscribe" (dict "allow" (uniq $subAllow) "deny" $subDeny) "allow_responses" true) -}}
{{- end -}}
{{- toJson $result -}}
{{- end -}}
