storage "etcd" {
  address         = "https://10.0.0.1:2379,https://10.0.0.2:2379"
  path            = "/custos/"
  etcd_api        = "v3"
  ha_enabled      = "false"
  username        = "custos"
  password        = "pw"
  tls_ca_file     = "/etc/custos/ca.pem"
  request_timeout = "10s"
  lock_timeout    = "15s"
  max_txn_ops     = 128
}
listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}
