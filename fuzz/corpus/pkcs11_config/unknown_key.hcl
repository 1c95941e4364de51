kbs_addr = "x"
unknown = 1
