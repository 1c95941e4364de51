ui            = true
cluster_addr  = "https://127.0.0.1:8201"
api_addr      = "https://127.0.0.1:8200"
disable_mlock = true

storage "sqlite" {
  path = "/opt/custos/data/custos.db"
}

listener "tcp" {
  address       = "127.0.0.1:8200"
  tls_cert_file = "/opt/custos/tls/full-chain.pem"
  tls_key_file  = "/opt/custos/tls/private-key.pem"
}
