storage "inmem" {}
listener "tcp" {
  adress = "x"
}
