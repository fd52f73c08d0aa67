-- Argo CD health check for kubetrain.io/TrainingJob (resource.customizations.health.kubetrain.io_TrainingJob).
-- Progressing while Pending/Starting/Running/Restarting, Healthy when Succeeded, Degraded when
-- Failed, Suspended when suspended. Written for Lua 5.1 (Argo CD's gopher-lua) and tested with
-- lua5.4 by tests/unit/gitops/test_argocd_health.py.
local hs = {}
local status = obj.status or {}
local phase = status.phase
local suspended = obj.spec ~= nil and obj.spec.runPolicy ~= nil and obj.spec.runPolicy.suspend == true

local function describe(default)
  local parts = {}
  if status.reason ~= nil then table.insert(parts, status.reason) end
  if status.message ~= nil then table.insert(parts, status.message) end
  local progress = status.progress
  if progress ~= nil and progress.step ~= nil and progress.totalSteps ~= nil then
    table.insert(parts, "step " .. tostring(progress.step) .. "/" .. tostring(progress.totalSteps))
  end
  if #parts == 0 then return default end
  return table.concat(parts, ": ")
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = describe("Succeeded")
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe("Failed")
elseif phase == "Suspended" or suspended then
  -- Also while the operator is still stopping the pods: the user asked for a suspension.
  hs.status = "Suspended"
  hs.message = describe("Suspended")
elseif phase == "Pending" or phase == "Starting" or phase == "Running" or phase == "Restarting" then
  hs.status = "Progressing"
  hs.message = describe(phase)
elseif phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubetrain operator"
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
