kbs_addr = "x"
key "a" "b" { id = "1" }
key { id = "2" }
