/** `<tenant>/<id>` (the Session and Run entity ids) → its parts. */
export const splitEntityId = (entityId: string): { readonly tenantId: string; readonly id: string } => {
  const slash = entityId.indexOf("/")
  return { tenantId: entityId.slice(0, slash), id: entityId.slice(slash + 1) }
}
