kbs_addr = "x"
tee = "nitro"
key "a" { id = "1" }
