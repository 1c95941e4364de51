path "kv/app" {
  capabilities = ["create", "read", "update"]
  allowed_parameters = { "bar" = ["zip", "baz/*", "*-prod", "*mid*", "60", "true"], "*" = [] }
  denied_parameters = { "baz" = ["a", "adm*"], "l" = [] }
  required_parameters = ["bar"]
}
path "kv/app" {
  capabilities = ["patch"]
  allowed_parameters = { "bar" = [] }
}
path "kv/+/deny" {
  capabilities = ["create"]
  denied_parameters = { "*" = [] }
}
