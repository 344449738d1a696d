{{/* The prefix of every object's name: the release's name, with
"-capprof" added unless it says capprof. The default release, capprof,
names its objects capprof-agent, capprof-controller, ... */}}
{{- define "capprof.name" -}}
{{- if contains "capprof" .Release.Name -}}
{{ .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else -}}
{{ printf "%s-capprof" .Release.Name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels of every object the chart makes. */}}
{{- define "capprof.labels" -}}
app.kubernetes.io/name: capprof
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Labels that select one component's pods: agent or controller. */}}
{{- define "capprof.selector" -}}
app.kubernetes.io/name: capprof
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image: repository@digest, or repository:tag (the appVersion by default). */}}
{{- define "capprof.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/* A service account's user name, as the API server authenticates it. */}}
{{- define "capprof.serviceAccountUser" -}}
system:serviceaccount:{{ .root.Release.Namespace }}:{{ .name }}
{{- end }}

{{/* The agent's events file on the node: agent.events.fileName in the
directory agent.events.hostPath. */}}
{{- define "capprof.eventsFile" -}}
{{- $e := .Values.agent.events -}}
{{- if not (isAbs $e.hostPath) -}}
{{- fail (printf "agent.events.hostPath %q: give an absolute directory on the node" $e.hostPath) -}}
{{- end -}}
{{- $dir := clean $e.hostPath -}}
{{- range list "/proc" "/sys" "/dev" "/etc" "/boot" "/usr" "/bin" "/sbin" "/lib" "/run/containerd" "/var/lib" }}
{{- if or (eq $dir "/") (eq $dir .) (hasPrefix (printf "%s/" .) $dir) -}}
{{- fail (printf "agent.events.hostPath %q: the agent would write there, and it is the node's own: give a directory for the events (/var/log/capprof)" $e.hostPath) -}}
{{- end -}}
{{- end -}}
{{- if or (not $e.fileName) (contains "/" $e.fileName) (eq $e.fileName ".") (eq $e.fileName "..") -}}
{{- fail (printf "agent.events.fileName %q: give a file name, without a directory" $e.fileName) -}}
{{- end -}}
{{ clean $e.hostPath }}/{{ $e.fileName }}
{{- end }}
