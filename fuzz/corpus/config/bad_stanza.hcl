storage "inmem" {}
listener "tcp" { tls_disable = true }
telemetry {
  statsd_address = "x"
}
