# Every key Custos accepts.
api_addr          = "https://custos.example:8200"
cluster_addr      = "https://custos.example:8201"
ui                = false
disable_mlock     = "1"
default_lease_ttl = "1h"
max_lease_ttl     = "768h"
log_level         = "info"

storage "sqlite" { path = "/var/lib/custos/custos.db" }

listener "tcp" {
  address              = "0.0.0.0:8200"
  cluster_address      = "0.0.0.0:8201"
  tls_cert_file        = "/etc/custos/tls/cert.pem"
  tls_key_file         = "/etc/custos/tls/key.pem"
  tls_min_version      = "tls13"
  tls_client_ca_file   = "/etc/custos/tls/clients.pem"
  max_request_size     = 1048576
  max_request_duration = "30s"
}

listener "tcp" {
  address     = "127.0.0.1:8300"
  tls_disable = true
}
