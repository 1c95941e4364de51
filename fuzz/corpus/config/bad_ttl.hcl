storage "inmem" {}
listener "tcp" { tls_disable = true }
default_lease_ttl = "1000h"
