kbs_addr = "http://127.0.0.1:8200"
key "a" { id = "1" }
key "a" { id = "2" }
