storage "sqlite" {
  path = "/var/lib/custos/custos.db"
}
listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}
seal "pkcs11" {
  lib            = "/usr/lib/softhsm/libsofthsm2.so"
  slot           = "0x2000000000000001"
  token_label    = "custos"
  pin            = "1234"
  key_label      = "custos-root"
  hmac_key_label = "custos-hmac"
  mechanism      = "0x1087"
  generate_key   = "true"
  rsa_oaep_hash  = "sha256"
}
