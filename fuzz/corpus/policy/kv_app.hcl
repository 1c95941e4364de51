# Application access to its own secrets
path "secret/data/app/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}
path "secret/metadata/app/*" {
  capabilities = ["list"]
}
path "secret/data/app/admin" {
  capabilities = ["deny"]
}
