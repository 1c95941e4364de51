path "a/*/b" { capabilities = ["read"] }
