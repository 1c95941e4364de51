kbs_addr = "https://kbs.example:8200"
ca_file = "/etc/custos/ca.pem"
tee = "sim"
sim_dir = "/var/lib/custos/sim"
isv_prod_id = 1
isv_svn = 2
pin = "1234"
token_label = "custos"
key "web" { id = "8c1f0b9e-0000-4000-8000-000000000001" }
key "api" {
  id = "8c1f0b9e-0000-4000-8000-000000000002"
}
