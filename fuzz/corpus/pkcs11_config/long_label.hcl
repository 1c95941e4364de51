kbs_addr = "x"
token_label = "012345678901234567890123456789012"
key "a" { id = "1" }
