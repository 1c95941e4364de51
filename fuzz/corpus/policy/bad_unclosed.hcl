path "x" {
  capabilities = ["read"
