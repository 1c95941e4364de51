storage "inmem" {}
listener "tcp" {
  tls_disable = true
}
seal "awskms" {
  region = "eu-west-1"
}
