-- Argo CD health check for the qdrant-operator's kinds (QdrantCluster, QdrantCollection,
-- QdrantBackup, QdrantBackupSchedule, QdrantRestore). It reads the kstatus conditions every
-- kind writes: Stalled True is Degraded, Reconciling True is Progressing, both False with the
-- generation observed is Healthy. Install it once per kind in argocd-cm (docs/gitops.md).
hs = {status = "Progressing", message = "waiting for the operator to report a status"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Stalled" and c.status == "True" then
    return {status = "Degraded", message = c.reason .. ": " .. c.message}
  end
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Reconciling" and c.status == "True" then
    return {status = "Progressing", message = c.reason .. ": " .. c.message}
  end
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Paused" and c.status == "True" then
    return {status = "Suspended", message = c.message}
  end
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  return hs
end
return {status = "Healthy", message = ""}
