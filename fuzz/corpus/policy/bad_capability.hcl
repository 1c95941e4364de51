path "x" {
  capabilities = ["raed"]
}
