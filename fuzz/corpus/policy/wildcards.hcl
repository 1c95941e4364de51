path "secret/+/teamb" { capabilities = ["read"] }
path "secret/+/+/teamb/*" { capabilities = ["read", "list"] }
path "kv/zip-*" { capabilities = ["read"] }
path "sys/audit/*" { capabilities = ["create", "update", "sudo"] }
