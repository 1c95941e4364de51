storage "sqlite" {
  path = "/var/lib/custos/custos.db"
}
listener "tcp" {
  address = "127.0.0.1:8200"
  tls_disable = true
}
cache_size = 4096
disable_cache = false
