storage "raft" {
  path = "/opt/vault/data"
  node_id = "node1"
}
listener "tcp" { tls_disable = true }
