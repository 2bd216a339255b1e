{{/*
NetworkPolicy rules of one platform service (argument: dict root name), used by
networkpolicies.yaml: who may call it (ingress) and what it may call (egress) besides NATS, DNS,
the database and the object store, which have policies of their own.
*/}}

{{- define "csu.ingressRules" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $v := $root.Values -}}
{{- $svc := index $v.services $name -}}
    {{- if eq $name "gateway" }}
    # The public door: the console, the REST API and the federation API.
    - ports:
        - {protocol: TCP, port: 8080}
      {{- with $v.gateway.networkPolicy.from }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- if and (eq $name "gateway") $v.gateway.networkPolicy.from }}
    # `helm test`: the smoke test Pod logs in like a browser would.
    - ports:
        - {protocol: TCP, port: 8080}
      from:
        - podSelector:
            matchLabels:
              {{- include "csu.selectorLabels" $root | nindent 14 }}
              app.kubernetes.io/component: smoke-test
    {{- end }}
    {{- if and $svc.grpcPort $svc.grpcClients }}
    - ports:
        - {protocol: TCP, port: {{ $svc.grpcPort }}}
      from:
        - podSelector:
            matchLabels:
              {{- include "csu.selectorLabels" $root | nindent 14 }}
            matchExpressions:
              - {key: app.kubernetes.io/component, operator: In, values: {{ toJson $svc.grpcClients }}}
    {{- end }}
    {{- if ne $name "gateway" }}
    # The gateway asks each service's /readyz (`csuctl health` in the gateway pod).
    - ports:
        - {protocol: TCP, port: {{ include "csu.httpPort" $name }}}
      from:
        - podSelector:
            matchLabels:
              {{- include "csu.selectorLabels" $root | nindent 14 }}
              app.kubernetes.io/component: gateway
    {{- end }}
    {{- if $v.metrics.serviceMonitor.enabled }}
    # Prometheus scrapes /metrics on the HTTP port.
    - ports:
        - {protocol: TCP, port: {{ include "csu.httpPort" $name }}}
      from:
        {{- toYaml $v.metrics.networkPolicy.from | nindent 8 }}
    {{- end }}
{{- end -}}

{{- define "csu.egressRules" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $v := $root.Values -}}
{{- $names := splitList " " (include "csu.serviceNames" $root) -}}
{{- /* The services whose gRPC API this one calls. */}}
{{- $callees := list -}}
{{- range $other := $names -}}
{{- $o := index $v.services $other -}}
{{- if and $o.grpcPort (has $name ($o.grpcClients | default list)) -}}
{{- $callees = append $callees (dict "name" $other "port" $o.grpcPort) -}}
{{- end -}}
{{- end -}}
    {{- range $callee := $callees }}
    - ports:
        - {protocol: TCP, port: {{ $callee.port }}}
      to:
        - podSelector:
            matchLabels:
              {{- include "csu.selectorLabels" $root | nindent 14 }}
              app.kubernetes.io/component: {{ $callee.name }}
    {{- end }}
    {{- if eq $name "gateway" }}
    # Every service's /readyz, for `csuctl health` in the gateway pod.
    - ports:
        - {protocol: TCP, port: 8180}
      to:
        - podSelector:
            matchLabels:
              {{- include "csu.selectorLabels" $root | nindent 14 }}
            matchExpressions:
              - {key: app.kubernetes.io/component, operator: In, values: {{ without $names "gateway" | toJson }}}
    {{- end }}
    {{- if and (eq $name "ingest") $v.cameraNetwork.cidrs }}
    # The camera network: ingest only.
    - to:
        {{- range $cidr := $v.cameraNetwork.cidrs }}
        - ipBlock: {cidr: {{ $cidr }}}
        {{- end }}
      {{- with $v.cameraNetwork.ports }}
      ports:
        {{- range $port := . }}
        - {protocol: TCP, port: {{ $port }}}
        {{- end }}
      {{- end }}
    {{- end }}
    {{- if and $v.smtp.existingSecret (has $name $v.smtp.consumers) }}
    - ports:
        - {protocol: TCP, port: {{ $v.smtp.networkPolicy.port }}}
      {{- with $v.smtp.networkPolicy.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- if $v.otel.endpoint }}
    - ports:
        - {protocol: TCP, port: {{ $v.otel.networkPolicy.port | default (include "csu.urlPort" (list $v.otel.endpoint "4317")) }}}
      {{- with $v.otel.networkPolicy.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
{{- end -}}
