storage "sqlite" {
  path = "/var/lib/custos"
}
listener "tcp" "x" {
  inner { k = [1, 2,] }
}
