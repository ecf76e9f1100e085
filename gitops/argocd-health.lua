-- Argo CD health check for modelroll.io/ModelDeployment.
-- Install: argocd-cm key `resource.customizations.health.modelroll.io_ModelDeployment`
-- (see gitops/README.md). Tested by tests/unit/test_gitops.py through lupa.
--
-- status.observedGeneration < metadata.generation  -> Progressing (spec not yet seen)
-- Degraded=True                                    -> Degraded   (abort, failed smoke test,
--                                                                  crash loop, invalid spec, ...)
-- Progressing=True, reason AwaitingPromotion       -> Suspended  (blue-green preview waits for
--                                                                  the modelroll.io/promote
--                                                                  annotation, like a paused
--                                                                  Argo Rollout)
-- Ready!=True, or Progressing=True                 -> Progressing
-- Ready=True and nothing in progress               -> Healthy
local hs = {}

local function condition(conditions, type_)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c.reason ~= nil and c.reason ~= "" then
    if c.message ~= nil and c.message ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.reason
  end
  return c.message or ""
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelroll operator to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelroll operator to observe generation " .. tostring(generation)
  if observed ~= nil then
    hs.message = hs.message .. " (observed " .. tostring(observed) .. ")"
  end
  return hs
end

local conditions = obj.status.conditions
local ready = condition(conditions, "Ready")
local progressing = condition(conditions, "Progressing")
local degraded = condition(conditions, "Degraded")

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded)
  return hs
end

if progressing ~= nil and progressing.status == "True" and progressing.reason == "AwaitingPromotion" then
  hs.status = "Suspended"
  hs.message = describe(progressing)
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

if ready.status ~= "True" then
  hs.status = "Progressing"
  hs.message = describe(ready)
  return hs
end

if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(progressing)
  return hs
end

hs.status = "Healthy"
hs.message = describe(ready)
return hs
