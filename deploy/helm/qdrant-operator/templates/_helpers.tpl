{{/*
The operator image, repository:tag. The three controllers run it, and the backup-controller
passes it on to the CronJobs of QdrantBackupSchedules (OPERATOR_IMAGE).
*/}}
{{- define "qdrant-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}
